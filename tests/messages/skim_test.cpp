#include "messages/skim.h"

#include <gtest/gtest.h>

#include <msgpack.hpp>

#include "messages/codec.h"

namespace simpleci::msg {
namespace {

std::string pack_nested(size_t outer, size_t inner) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_array(static_cast<uint32_t>(outer));
  for (size_t i = 0; i < outer; ++i) {
    pk.pack_array(static_cast<uint32_t>(inner));
    for (size_t j = 0; j < inner; ++j) pk.pack_uint8(1);
  }
  return std::string(buf.data(), buf.size());
}

TEST(Skim, CountsEveryValueAndFindsTheEnd) {
  const std::string body = encode(Register{"runner-1", 4, {7, 9, 1u << 20}});
  const Skim s = skim_msgpack(body + "tail", 100);
  ASSERT_TRUE(s.ok()) << s.error;
  // [type, name, capacity, [3 ids], [labels], serves_unnamed, serves_all]: the outer array,
  // its 7 values, the 3 ids (the labels are none).
  EXPECT_EQ(s.objects, 1u + 7u + 3u);
  EXPECT_EQ(s.end, body.size());
}

TEST(Skim, AgreesWithTheEncoderOnEveryKindOfValue) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_array(16);
  pk.pack_nil();
  pk.pack_true();
  pk.pack_int8(-100);
  pk.pack_int64(-(int64_t{1} << 40));
  pk.pack_uint16(60000);
  pk.pack_uint64(uint64_t{1} << 60);
  pk.pack_float(1.5f);
  pk.pack_double(2.5);
  pk.pack_str(300);
  pk.pack_str_body(std::string(300, 'x').data(), 300);
  pk.pack_bin(70000);
  pk.pack_bin_body(std::string(70000, 'y').data(), 70000);
  pk.pack_ext(1, 7);
  pk.pack_ext_body("z", 1);
  pk.pack_ext(300, 7);
  pk.pack_ext_body(std::string(300, 'e').data(), 300);
  pk.pack_map(2);
  pk.pack_uint8(1);
  pk.pack_str(0);
  pk.pack_uint8(2);
  pk.pack_array(0);
  pk.pack_array(20);
  for (int i = 0; i < 20; ++i) pk.pack_uint8(0);
  pk.pack_str(40);
  pk.pack_str_body(std::string(40, 's').data(), 40);
  pk.pack_fix_int8(-1);
  const std::string all(buf.data(), buf.size());
  const Skim s = skim_msgpack(all, 1000);
  ASSERT_TRUE(s.ok()) << s.error;
  EXPECT_EQ(s.end, all.size());
  EXPECT_EQ(s.objects, 1u + 16u + 4u + 20u);  // map: 2 keys + 2 values; array: 20
}

TEST(Skim, RefusesMoreObjectsThanTheBudget) {
  const std::string body = pack_nested(10, 100);  // 1 + 10 + 1000 values
  EXPECT_TRUE(skim_msgpack(body, 1011).ok());
  const Skim s = skim_msgpack(body, 1010);
  ASSERT_FALSE(s.ok());
  EXPECT_STREQ(s.error, "too many objects");
}

TEST(Skim, RefusesCountsAndLengthsPastTheEnd) {
  EXPECT_STREQ(skim_msgpack(std::string("\xdd\xff\xff\xff\xff", 5), 1u << 30).error,
               "more elements than bytes left");
  EXPECT_STREQ(skim_msgpack(std::string("\xc6\xff\xff\xff\xff", 5), 10).error,
               "length past the end of the frame");
  EXPECT_STREQ(skim_msgpack(std::string("\x92\x01", 2), 10).error, "more elements than bytes left");
  EXPECT_STREQ(skim_msgpack(std::string("\xcf\x01\x02", 3), 10).error,
               "length past the end of the frame");
  EXPECT_STREQ(skim_msgpack(std::string("\xdc\x00", 2), 10).error, "truncated");
  EXPECT_STREQ(skim_msgpack("", 10).error, "truncated");
  EXPECT_STREQ(skim_msgpack("\xc1", 10).error, "reserved byte 0xc1");
}

TEST(Skim, ReadsHeadsAndUnsignedIntegers) {
  const std::string array32("\xdd\x00\x01\x00\x00", 5);
  const Head a = read_head(array32, 0);
  EXPECT_EQ(a.kind, Head::Kind::kArray);
  EXPECT_EQ(a.size, 5u);
  EXPECT_EQ(a.count, 65536u);
  const Head m = read_head("\x82", 0);
  EXPECT_EQ(m.kind, Head::Kind::kMap);
  EXPECT_EQ(m.count, 2u);
  const Head s8 = read_head(std::string("\xd9\x05hello", 7), 0);
  EXPECT_EQ(s8.kind, Head::Kind::kOther);
  EXPECT_EQ(s8.size, 2u);
  EXPECT_EQ(s8.payload, 5u);
  EXPECT_STREQ(read_head("\xdc\x00", 0).error, "truncated");
  EXPECT_STREQ(read_head("\x90", 1).error, "truncated");

  const std::string ints = pack_nested(0, 0) + std::string("\x7f\xcc\xff\xcd\x01\x00", 6) +
                           std::string("\xcf\x00\x00\x00\x01\x00\x00\x00\x00\xd0\x01", 11);
  size_t at = 1;  // past the empty array
  EXPECT_EQ(read_uint(ints, &at), 0x7fu);
  EXPECT_EQ(read_uint(ints, &at), 0xffu);
  EXPECT_EQ(read_uint(ints, &at), 0x100u);
  EXPECT_EQ(read_uint(ints, &at), uint64_t{1} << 32);
  EXPECT_EQ(read_uint(ints, &at), 1u) << "an int8 of 1: msgpack-c reads it as unsigned";
  size_t neg = 0;
  EXPECT_EQ(read_uint(std::string("\xd1\xff\xfe", 3), &neg), std::nullopt) << "int16 -2";
  EXPECT_EQ(read_uint("\xff", &neg), std::nullopt) << "negative fixint";
  EXPECT_EQ(neg, 0u);
  size_t cut = 0;
  EXPECT_EQ(read_uint(std::string("\xcf\x01\x02", 3), &cut), std::nullopt);
  EXPECT_EQ(cut, 0u);
}

TEST(Skim, PeekNeverReadsPastTheBody) {
  const std::string body = encode(Commit{300, std::string(40, 'a'), "main", false});
  for (size_t n = 0; n < body.size(); ++n) {
    const Peeked p = peek(body.substr(0, n));
    EXPECT_EQ(p.request_id, n >= 5 ? 300u : 0u) << n;  // fixarray, 10, uint16 300: 5 bytes
  }
  EXPECT_EQ(peek(encode(Ok{5, 1, ""})).request_id, 0u) << "a reply is no request";
  EXPECT_EQ(peek(std::string("\x92\xcd\x01\x00", 4)).type, 0) << "type past 255";
}

// The decoder takes a type or request id written as a signed integer (msgpack-c unpacks a
// non-negative one as unsigned), so peek() must read it too: the role check under CURVE looks at
// peek's type, and a type it could not read would pass that check as "no question of role".
TEST(Skim, PeekReadsWhatTheDecoderReadsWhateverTheIntegerEncoding) {
  const std::string cancel("\x93\xd0\x10\xd1\x01\x2c\x05", 7);  // [int8 16, int16 300, 5]
  const Decoded d = decode_body(cancel);
  ASSERT_TRUE(d.ok()) << d.detail;
  ASSERT_TRUE(std::holds_alternative<CancelRequest>(d.message));
  const Peeked p = peek(cancel);
  EXPECT_EQ(p.type, static_cast<uint8_t>(MessageType::kCancelRequest));
  EXPECT_EQ(p.request_id, 300u);
}

// The attack of issue 7: one 16 MiB frame of small nested arrays. It is refused by counting,
// before msgpack builds ~16 million objects.
TEST(Skim, DecodeRefusesAFrameOfManySmallValuesBeforeUnpacking) {
  const std::string body = pack_nested(1000, 1000);  // ~1 M values in ~1 MB
  const Decoded d = decode_body(body, kMaxRequestObjects);
  EXPECT_EQ(d.error, DecodeError::kMalformed);
  EXPECT_EQ(d.detail, "msgpack: too many objects");
  // The largest legal reply stays under the global budget.
  StatusReply big;
  for (int r = 0; r < 1000; ++r) {
    RunnerInfo info{"r" + std::to_string(r), "busy", 256, {}, 1};
    for (uint64_t id = 1; id <= 1000; ++id) info.jobs.push_back(id);
    big.runners.push_back(std::move(info));
  }
  for (uint64_t id = 1; id <= 1000; ++id) {
    JobSummary s;
    s.job_id = id;
    s.commit = std::string(40, 'a');
    big.running.push_back(s);
  }
  for (int c = 0; c < 64; ++c) big.counters.push_back(Counter{"c" + std::to_string(c), 1});
  const std::string reply = encode(Message(big));
  EXPECT_LE(skim_msgpack(reply, kMaxObjects + 1).objects, kMaxObjects);
  EXPECT_TRUE(decode_body(reply).ok()) << decode_body(reply).detail;
  // Every request fits the dispatcher's budget: REGISTER with 1000 held jobs is the largest.
  Register reg{"runner", 1, {}};
  for (uint64_t id = 1; id <= 1000; ++id) reg.held_jobs.push_back(id);
  EXPECT_TRUE(decode_body(encode(Message(reg)), kMaxRequestObjects).ok());
}

}  // namespace
}  // namespace simpleci::msg
