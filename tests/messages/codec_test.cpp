#include "messages/codec.h"

#include <filesystem>
#include <fstream>
#include <iterator>

#include <gtest/gtest.h>

#include <msgpack.hpp>

namespace simpleci::msg {
namespace {

const std::string kSha1(40, 'a');
const std::string kSha256(64, '0');

template <class T>
T round_trip(const T& in) {
  const Decoded d = decode(header_frame(), encode(Message(in)));
  EXPECT_TRUE(d.ok()) << d.detail;
  EXPECT_TRUE(std::holds_alternative<T>(d.message));
  return std::get<T>(d.message);
}

TEST(Codec, RoundTripsEveryMessageType) {
  EXPECT_EQ(round_trip(Register{"runner-1", 4, {7, 9}}), (Register{"runner-1", 4, {7, 9}}));
  EXPECT_EQ(round_trip(Welcome{250}), Welcome{250});
  EXPECT_EQ(round_trip(Heartbeat{}), Heartbeat{});
  const Job job{42, 2, kSha1, "feature/x", "make test", 30, 4096};
  EXPECT_EQ(round_trip(job), job);
  const Output out{42, 2, 1000, std::string("a\0b\xff", 4)};
  EXPECT_EQ(round_trip(out), out);
  const Result res{42, 2, JobStatus::kFailed, 1, 1000, 2000, true, "boom"};
  EXPECT_EQ(round_trip(res), res);
  EXPECT_EQ(round_trip(ResultAck{42, 2}), (ResultAck{42, 2}));
  EXPECT_EQ(round_trip(Reregister{}), Reregister{});
  EXPECT_EQ(round_trip(CancelJob{42, 1}), (CancelJob{42, 1}));
  const Commit c{5, kSha256, "main", true};
  EXPECT_EQ(round_trip(c), c);
  EXPECT_EQ(round_trip(Accepted{5, 42, true}), (Accepted{5, 42, true}));
  EXPECT_EQ(round_trip(StatusRequest{9}), StatusRequest{9});
  StatusReply sr;
  sr.request_id = 9;
  sr.runners.push_back(RunnerInfo{"r1", "busy", 2, {42}, 123});
  sr.queue_length = 3;
  sr.running.push_back(JobSummary{42, kSha1, "main", JobStatus::kRunning, -1, 0, "r1", 1, 1, 2, 0,
                                  false});
  sr.counters.push_back(Counter{"rejected.malformed", 7});
  EXPECT_EQ(round_trip(sr), sr);
  const ResultsRequest rq{3, kSha1, 10, true};
  EXPECT_EQ(round_trip(rq), rq);
  ResultsReply rr;
  rr.request_id = 3;
  rr.jobs = sr.running;
  rr.output = "hello";
  EXPECT_EQ(round_trip(rr), rr);
  EXPECT_EQ(round_trip(CancelRequest{1, 42}), (CancelRequest{1, 42}));
  EXPECT_EQ(round_trip(RetryRequest{1, 42}), (RetryRequest{1, 42}));
  EXPECT_EQ(round_trip(Ok{1, 42, "done"}), (Ok{1, 42, "done"}));
  EXPECT_EQ(round_trip(Error{1, ErrorCode::kNotFound, "no job 42"}),
            (Error{1, ErrorCode::kNotFound, "no job 42"}));
  EXPECT_EQ(round_trip(Drain{}), Drain{});
  EXPECT_EQ(round_trip(WatchRequest{5, 42, 2, 1000}), (WatchRequest{5, 42, 2, 1000}));
  const WatchReply wr{5, 42, 2, JobStatus::kFailed, 1, 1500, "r1", 1000, std::string("out\0put", 7), true};
  EXPECT_EQ(round_trip(wr), wr);
  EXPECT_EQ(round_trip(PruneRequest{6, 30}), (PruneRequest{6, 30}));
  EXPECT_EQ(round_trip(Error{1, ErrorCode::kQueueFull, "100 jobs queued"}),
            (Error{1, ErrorCode::kQueueFull, "100 jobs queued"}));
  EXPECT_EQ(round_trip(ObserverHello{}), ObserverHello{});
  const Notify n{7, {{"main"}, {"feature/x"}}};
  EXPECT_EQ(round_trip(n), n);
  EXPECT_EQ(round_trip(Notify{8, {}}), (Notify{8, {}}));
  EXPECT_EQ(round_trip(Wake{n.branches}), Wake{n.branches});
  EXPECT_EQ(round_trip(Wake{}), Wake{});
}

// Every row of the table, and what is derived from it, agree.
TEST(Codec, TheTableDrivesTypeOfNamesAndLookups) {
  size_t rows = 0;
  std::apply(
      [&](const auto&... row) {
        ([&] {
          using T = typename std::decay_t<decltype(row)>::type;
          ++rows;
          const Message m = T{};
          EXPECT_EQ(type_of(m), row.info.wire) << row.info.name;
          EXPECT_EQ(to_string(type_of(m)), row.info.name);
          EXPECT_EQ(&info_of(m), type_info(static_cast<uint8_t>(row.info.wire)));
        }(), ...);
      },
      kMessageTypes);
  EXPECT_EQ(rows, size_t{kMaxMessageType});
  EXPECT_EQ(type_info(0), nullptr);
  EXPECT_EQ(type_info(kMaxMessageType + 1), nullptr);
  EXPECT_EQ(to_string(static_cast<MessageType>(kMaxMessageType + 1)), "?");
}

// A request's id is its first field, where peek() reads it; other types give 0.
TEST(Codec, PeekReadsTheRequestIdOfEveryRequest) {
  std::apply(
      [&](const auto&... row) {
        ([&] {
          using T = typename std::decay_t<decltype(row)>::type;
          T body{};
          if constexpr (table::HasRequestId<T>) body.request_id = 0x1234567;
          const Peeked p = peek(encode(Message(body)));
          EXPECT_EQ(p.type, static_cast<uint8_t>(row.info.wire));
          const bool asks = row.info.request_id == RequestId::kAsks;
          EXPECT_EQ(p.request_id, asks ? 0x1234567u : 0u) << row.info.name;
        }(), ...);
      },
      kMessageTypes);
}

TEST(Codec, TypeNamesAreStable) {
  EXPECT_EQ(to_string(MessageType::kCommit), "commit");
  EXPECT_EQ(to_string(MessageType::kDrain), "drain");
  EXPECT_EQ(to_string(MessageType::kWatchReply), "watch_reply");
  EXPECT_EQ(static_cast<int>(MessageType::kWatchRequest), 21);
  EXPECT_EQ(static_cast<int>(MessageType::kPruneRequest), 23);
  EXPECT_EQ(to_string(MessageType::kPruneRequest), "prune_request");
  EXPECT_EQ(static_cast<int>(MessageType::kObserverHello), 24);
  EXPECT_EQ(static_cast<int>(MessageType::kNotify), 25);
  EXPECT_EQ(static_cast<int>(MessageType::kWake), 26);
  EXPECT_EQ(to_string(MessageType::kNotify), "notify");
  EXPECT_EQ(to_string(MessageType::kWake), "wake");
  EXPECT_EQ(static_cast<int>(ErrorCode::kQueueFull), 7);
  EXPECT_EQ(to_string(ErrorCode::kQueueFull), "queue_full");
  EXPECT_EQ(to_string(JobStatus::kCancelled), "cancelled");
  EXPECT_EQ(job_status_from_string("timeout"), JobStatus::kTimeout);
  EXPECT_EQ(job_status_from_string("nope"), std::nullopt);
  EXPECT_EQ(static_cast<int>(MessageType::kResult), 6);  // wire value, never renumber
}

// Packs an arbitrary msgpack value for hostile-input cases.
template <class F>
std::string pack(F&& f) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  f(pk);
  return std::string(buf.data(), buf.size());
}

struct BadCase {
  const char* what;
  std::string header;
  std::string body;
  DecodeError want;
};

std::vector<BadCase> bad_cases() {
  const std::string h = header_frame();
  const std::string good_commit = encode(Commit{1, kSha1, "main", false});
  std::vector<BadCase> v = {
      {"empty body", h, "", DecodeError::kMalformed},
      {"empty header", "", good_commit, DecodeError::kBadHeader},
      {"wrong magic", "XYZ\x01", good_commit, DecodeError::kBadHeader},
      {"long header", h + "x", good_commit, DecodeError::kBadHeader},
      {"future version", std::string("SCI\x03", 4), good_commit, DecodeError::kVersion},
      {"version 1", std::string("SCI\x01", 4), good_commit, DecodeError::kVersion},
      {"random bytes", h, std::string("\xc1\xc1\xc1\xc1", 4), DecodeError::kMalformed},
      {"truncated", h, good_commit.substr(0, good_commit.size() - 3), DecodeError::kMalformed},
      {"trailing bytes", h, good_commit + "x", DecodeError::kTrailingBytes},
      // array32 header claiming 4 G elements in 5 bytes
      {"4G array", h, std::string("\xdd\xff\xff\xff\xff", 5), DecodeError::kMalformed},
      {"4G map", h, std::string("\xdf\xff\xff\xff\xff", 5), DecodeError::kMalformed},
      {"4G str", h, std::string("\xdb\xff\xff\xff\xff", 5), DecodeError::kMalformed},
      {"4G bin", h, std::string("\xc6\xff\xff\xff\xff", 5), DecodeError::kMalformed},
      {"not an array", h, pack([](auto& pk) { pk.pack(7); }), DecodeError::kMalformed},
      {"empty array", h, pack([](auto& pk) { pk.pack_array(0); }), DecodeError::kMalformed},
      {"type 0", h, pack([](auto& pk) { pk.pack_array(1); pk.pack(0); }),
       DecodeError::kUnknownType},
      {"type 99", h, pack([](auto& pk) { pk.pack_array(1); pk.pack(99); }),
       DecodeError::kUnknownType},
      {"one past the last type", h, pack([](auto& pk) { pk.pack_array(1); pk.pack(kMaxMessageType + 1); }),
       DecodeError::kUnknownType},
      {"notify naming a bad branch", h,
       pack([](auto& pk) {
         pk.pack_array(3); pk.pack(25); pk.pack(1);
         pk.pack_array(1); pk.pack_array(1); pk.pack("a..b");
       }),
       DecodeError::kBadField},
      {"notify naming 65 branches", h,
       pack([](auto& pk) {
         pk.pack_array(3); pk.pack(25); pk.pack(1); pk.pack_array(65);
         for (int i = 0; i < 65; ++i) { pk.pack_array(1); pk.pack("b"); }
       }),
       DecodeError::kBadField},
      {"wake with a branch that is not a record", h,
       pack([](auto& pk) { pk.pack_array(2); pk.pack(26); pk.pack_array(1); pk.pack("main"); }),
       DecodeError::kBadField},
      {"prune of 0 days", h, pack([](auto& pk) { pk.pack_array(3); pk.pack(23); pk.pack(1); pk.pack(0); }),
       DecodeError::kBadField},
      {"prune past 36500 days", h,
       pack([](auto& pk) { pk.pack_array(3); pk.pack(23); pk.pack(1); pk.pack(36501); }),
       DecodeError::kBadField},
      {"watch offset past 2^50", h,
       pack([](auto& pk) {
             pk.pack_array(5); pk.pack(21); pk.pack(1); pk.pack(2); pk.pack(0);
             pk.pack(uint64_t{1} << 51);
           }),
       DecodeError::kBadField},
      {"type as string", h, pack([](auto& pk) { pk.pack_array(1); pk.pack("job"); }),
       DecodeError::kUnknownType},
      {"deep nesting", h, std::string(100, '\x91') + '\x01', DecodeError::kMalformed},
      {"missing fields", h, pack([](auto& pk) { pk.pack_array(2); pk.pack(10); pk.pack(1); }),
       DecodeError::kBadField},
      {"extra field", h, pack([](auto& pk) { pk.pack_array(2); pk.pack(3); pk.pack(1); }),
       DecodeError::kBadField},
      {"commit id is a path", h, encode(Commit{1, "../../etc/passwd", "main", false}),
       DecodeError::kBadField},
      {"commit id not hex", h, encode(Commit{1, std::string(40, 'g'), "main", false}),
       DecodeError::kBadField},
      {"commit id uppercase", h, encode(Commit{1, std::string(40, 'A'), "main", false}),
       DecodeError::kBadField},
      {"name with slash", h, encode(Register{"a/b", 1, {}}), DecodeError::kBadField},
      {"name with NUL", h, encode(Register{std::string("a\0b", 3), 1, {}}), DecodeError::kBadField},
      {"name dot-dot", h, encode(Register{"..", 1, {}}), DecodeError::kBadField},
      {"capacity 0", h, encode(Register{"r", 0, {}}), DecodeError::kBadField},
      {"job id 0", h, encode(ResultAck{0, 1}), DecodeError::kBadField},
      {"branch with ..", h, encode(Commit{1, kSha1, "a..b", false}), DecodeError::kBadField},
      {"wrong field type", h,
       pack([](auto& pk) { pk.pack_array(3); pk.pack(7); pk.pack("x"); pk.pack(1); }),
       DecodeError::kBadField},
      {"bool as int", h,
       pack([](auto& pk) {
         pk.pack_array(5); pk.pack(10); pk.pack(1); pk.pack(std::string(40, 'a'));
         pk.pack("main"); pk.pack(1);
       }),
       DecodeError::kBadField},
      {"status out of range", h,
       pack([](auto& pk) {
         pk.pack_array(9); pk.pack(6); pk.pack(1); pk.pack(1); pk.pack(77); pk.pack(0);
         pk.pack(0); pk.pack(0); pk.pack(false); pk.pack_bin(0);
       }),
       DecodeError::kBadField},
      {"result with non-final status", h,
       pack([](auto& pk) {
         pk.pack_array(9); pk.pack(6); pk.pack(1); pk.pack(1); pk.pack(1); pk.pack(0);
         pk.pack(0); pk.pack(0); pk.pack(false); pk.pack_bin(0);
       }),
       DecodeError::kBadField},
      {"negative time", h,
       pack([](auto& pk) {
         pk.pack_array(9); pk.pack(6); pk.pack(1); pk.pack(1); pk.pack(2); pk.pack(0);
         pk.pack(-5); pk.pack(0); pk.pack(false); pk.pack_bin(0);
       }),
       DecodeError::kBadField},
      {"map where array expected", h,
       pack([](auto& pk) { pk.pack_array(4); pk.pack(1); pk.pack("r"); pk.pack(1); pk.pack_map(0); }),
       DecodeError::kBadField},
      {"output chunk too big", h, encode(Output{1, 1, 0, std::string(kMaxChunkBytes + 1, 'x')}),
       DecodeError::kBadField},
  };
  return v;
}

TEST(Codec, RejectsEveryBadInputWithTheRightReason) {
  for (const BadCase& c : bad_cases()) {
    const Decoded d = decode(c.header, c.body);
    EXPECT_EQ(d.error, c.want) << c.what << ": got " << to_string(d.error) << " (" << d.detail
                               << ")";
    EXPECT_FALSE(d.detail.empty()) << c.what;
  }
}

TEST(Codec, ErrorTextNamesTheField) {
  const Decoded d = decode(header_frame(), encode(Commit{1, "nothex", "main", false}));
  EXPECT_EQ(d.detail, "commit.commit: not a commit id (40 or 64 lowercase hex characters)");
}

TEST(Codec, ValidateCatchesWhatDecodeWouldReject) {
  EXPECT_EQ(validate(Commit{1, kSha1, "main", false}), "");
  EXPECT_NE(validate(Commit{1, "xyz", "main", false}), "");
  EXPECT_NE(validate(Register{"bad name", 1, {}}), "");
  EXPECT_NE(validate(Job{1, 0, kSha1, "", "t", 1, 4096}), "");  // attempt 0
}

// EVENTS is the deepest message (EVENTS > event > runners > runner > its jobs): the decoder's
// depth limit must let the fullest one through, or subscribers drop every batch.
TEST(Codec, AFullEventsBatchRoundTripsAndItsSizeBoundHolds) {
  Events b;
  for (uint64_t i = 1; i <= kMaxListLen; ++i) {
    Event e;
    e.seq = i;
    e.kind = static_cast<uint32_t>(EventKind::kJobStarted);
    e.jobs.push_back(JobSummary{i, kSha1, "main", JobStatus::kRunning, 0, 0, "r1", 1, 1, 2, 0, false});
    e.runners.push_back(RunnerInfo{"r1", "busy", 2, {i, i + 1}, 123});
    b.events.push_back(e);
  }
  ASSERT_EQ(validate(b), "");
  const std::string body = encode(b);
  EXPECT_LE(body.size(), encoded_size_bound(b));
  EXPECT_LE(encode(b.events[0]).size(), encoded_size_bound(b.events[0]));
  const Decoded d = decode_body(body);
  ASSERT_TRUE(d.ok()) << d.detail;
  EXPECT_EQ(std::get<Events>(d.message), b);
}

TEST(Codec, LargestLegalResultFitsTheFrameLimit) {
  Result r{1, 1, JobStatus::kPassed, 0, 1, 2, true, std::string(kMaxOutputCap, 'x')};
  const std::string body = encode(r);
  EXPECT_LT(body.size(), static_cast<size_t>(kMaxFrameBytes));
  EXPECT_TRUE(decode_body(body).ok());
}

}  // namespace
}  // namespace simpleci::msg

namespace simpleci::msg {
namespace {

// The fuzzers start from tests/fuzz/corpus: each seed named after a message type must stay a
// valid message of that type as the protocol grows, or the fuzzers start from garbage.
TEST(FuzzCorpusTest, EverySeedNamedAfterATypeDecodesAsThatType) {
  namespace fs = std::filesystem;
  size_t seeds = 0;
  for (const auto& e : fs::directory_iterator(fs::path(SIMPLECI_SOURCE_DIR) / "tests/fuzz/corpus")) {
    const std::string name = e.path().filename().string();
    std::ifstream in(e.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ASSERT_FALSE(bytes.empty()) << name;
    bool is_type = false;
    for (uint8_t t = kMinMessageType; t <= kMaxMessageType; ++t) is_type |= type_info(t)->name == name;
    if (!is_type) continue;
    ++seeds;
    ASSERT_LT(static_cast<uint8_t>(bytes[0]), 200) << name << ": mode byte must pick the valid header";
    const Decoded d = decode(header_frame(), std::string_view(bytes).substr(1));
    ASSERT_TRUE(d.ok()) << name << ": " << d.detail;
    EXPECT_EQ(to_string(type_of(d.message)), name);
  }
  EXPECT_EQ(seeds, size_t{kMaxMessageType}) << "a message type has no seed in tests/fuzz/corpus";
}

}  // namespace
}  // namespace simpleci::msg
