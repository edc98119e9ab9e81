// Roles under CURVE and the request ids ERROR replies carry.
#include <msgpack.hpp>

#include "tests/dispatcher/fixture.h"

namespace simpleci::dispatcher {
namespace {

using msg::ErrorCode;
using msg::MessageType;

// A body built by hand, so it can hold what encode() would never write.
template <class... Fields>
std::string body(MessageType t, const Fields&... fields) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_array(1 + sizeof...(Fields));
  pk.pack(static_cast<uint8_t>(t));
  (pk.pack(fields), ...);
  return std::string(buf.data(), buf.size());
}

class RolesTest : public DispatcherTest {
 protected:
  void SetUp() override {
    DispatcherTest::SetUp();
    cfg_.require_identity = true;
    open();
    d_->set_authorized({{"builder", Role::kRunner},
                        {"watcher", Role::kObserver},
                        {"dev", Role::kClient},
                        {"ops", Role::kAdmin},
                        {"old", Role::kAny}});
  }
  // A message from peer under the key named key (the peer's name is also its key's name).
  void from(const std::string& peer, const msg::Message& m) {
    std::string h = msg::header_frame(), b = msg::encode(m);
    std::vector<std::string_view> frames = {h, b};
    d_->on_message(peer, -1, frames, peer);
    d_->flush();
  }
  // The one ERROR peer got; fails the test when there is not exactly one.
  msg::Error error_to(const std::string& peer) {
    auto e = out_.take<msg::Error>(peer);
    EXPECT_EQ(e.size(), 1u);
    return e.empty() ? msg::Error{} : e[0];
  }
  uint64_t queued_job() {
    from("ops", msg::Commit{1, commit_id(1), "main", false});
    auto a = out_.take<msg::Accepted>("ops");
    return a.empty() ? 0 : a[0].job_id;
  }
};

TEST_F(RolesTest, OnlyRunnerKeysRegister) {
  from("dev", msg::Register{"dev", 1, {}});
  EXPECT_EQ(error_to("dev").code, ErrorCode::kUnauthorized);
  from("watcher", msg::Register{"watcher", 1, {}});
  EXPECT_EQ(error_to("watcher").code, ErrorCode::kUnauthorized);
  from("ops", msg::Register{"ops", 1, {}});
  EXPECT_EQ(error_to("ops").code, ErrorCode::kUnauthorized);
  EXPECT_EQ(d_->runner_count(), 0u);
  queued_job();
  EXPECT_TRUE(out_.take<msg::Job>("dev").empty());

  from("builder", msg::Register{"builder", 1, {}});
  EXPECT_EQ(out_.take<msg::Welcome>("builder").size(), 1u);
  EXPECT_EQ(out_.take<msg::Job>("builder").size(), 1u);
  from("old", msg::Register{"old", 1, {}});
  EXPECT_EQ(out_.take<msg::Welcome>("old").size(), 1u) << "a key without a role may do anything";
  EXPECT_EQ(d_->counter("rejected.unauthorized"), 3u);
}

TEST_F(RolesTest, NonRunnersCannotSendRunnerMessages) {
  const uint64_t id = queued_job();
  from("builder", msg::Register{"builder", 1, {}});
  auto job = out_.take<msg::Job>("builder").at(0);
  from("dev", result_for(job));
  EXPECT_EQ(error_to("dev").code, ErrorCode::kUnauthorized);
  from("ops", msg::Heartbeat{});
  EXPECT_EQ(error_to("ops").code, ErrorCode::kUnauthorized);
  from("watcher", msg::Drain{});
  EXPECT_EQ(error_to("watcher").code, ErrorCode::kUnauthorized);
  from("ops", msg::StatusRequest{3});
  auto st = out_.take<msg::StatusReply>("ops").at(0);
  ASSERT_EQ(st.running.size(), 1u);
  EXPECT_EQ(st.running[0].job_id, id) << "still running: no forged result was taken";
}

TEST_F(RolesTest, RunnerKeysCannotSubmitOrCancelAndTheRequestIdComesBack) {
  from("builder", msg::Commit{41, commit_id(7), "main", false});
  msg::Error e = error_to("builder");
  EXPECT_EQ(e.code, ErrorCode::kUnauthorized);
  EXPECT_EQ(e.request_id, 41u);
  EXPECT_EQ(d_->queue_length(), 0u);

  const uint64_t id = queued_job();
  from("builder", msg::CancelRequest{42, id});
  e = error_to("builder");
  EXPECT_EQ(e.code, ErrorCode::kUnauthorized);
  EXPECT_EQ(e.request_id, 42u);
  from("builder", msg::StatusRequest{43});
  EXPECT_EQ(error_to("builder").request_id, 43u);
  EXPECT_EQ(d_->queue_length(), 1u) << "nothing was cancelled";
  EXPECT_EQ(d_->counter("rejected.unauthorized"), 3u);
}

TEST_F(RolesTest, ObserversSubmitClientsReadAdminsCancel) {
  from("watcher", msg::Commit{5, commit_id(5), "main", false});
  auto accepted = out_.take<msg::Accepted>("watcher");
  ASSERT_EQ(accepted.size(), 1u);
  const uint64_t id = accepted[0].job_id;
  from("watcher", msg::CancelRequest{6, id});
  EXPECT_EQ(error_to("watcher").request_id, 6u);
  from("dev", msg::Commit{7, commit_id(8), "main", false});
  EXPECT_EQ(error_to("dev").request_id, 7u);
  from("dev", msg::RetryRequest{8, id});
  EXPECT_EQ(error_to("dev").request_id, 8u);
  from("dev", msg::ResultsRequest{9, commit_id(5), 10, false});
  EXPECT_EQ(out_.take<msg::ResultsReply>("dev").size(), 1u);
  from("dev", msg::WatchRequest{10, id, 0, 0});
  EXPECT_EQ(out_.take<msg::WatchReply>("dev").size(), 1u);
  EXPECT_EQ(d_->queue_length(), 1u);

  from("ops", msg::CancelRequest{11, id});
  ASSERT_EQ(out_.take<msg::Ok>("ops").size(), 1u);
  EXPECT_EQ(d_->queue_length(), 0u);
}

TEST_F(RolesTest, OnlyAdminsPrune) {
  for (const char* key : {"builder", "watcher", "dev"}) {
    from(key, msg::PruneRequest{21, 30});
    msg::Error e = error_to(key);
    EXPECT_EQ(e.code, ErrorCode::kUnauthorized) << key;
    EXPECT_EQ(e.request_id, 21u) << key;
  }
  from("ops", msg::PruneRequest{22, 30});
  auto ok = out_.take<msg::Ok>("ops");
  ASSERT_EQ(ok.size(), 1u);
  EXPECT_EQ(ok[0].request_id, 22u);
  EXPECT_EQ(d_->counter("rejected.unauthorized"), 3u);
}

TEST_F(RolesTest, AReloadThatTakesAwayTheRunnerRoleEndsTheRunner) {
  from("builder", msg::Register{"builder", 1, {}});
  ASSERT_EQ(d_->runner_count(), 1u);
  d_->set_authorized({{"builder", Role::kClient}, {"ops", Role::kAdmin}});
  EXPECT_EQ(d_->runner_count(), 0u);
  from("builder", msg::Heartbeat{});
  EXPECT_EQ(error_to("builder").code, ErrorCode::kUnauthorized);
}

TEST_F(RolesTest, ARevokedKeyGetsItsRequestIdBack) {
  d_->set_authorized({{"ops", Role::kAdmin}});
  from("dev", msg::StatusRequest{12});
  msg::Error e = error_to("dev");
  EXPECT_EQ(e.code, ErrorCode::kUnauthorized);
  EXPECT_EQ(e.request_id, 12u);
}

TEST_F(RolesTest, ObserversClientsAndAdminsNotifyOnlyObserversSayHello) {
  from("watcher", msg::ObserverHello{});
  EXPECT_TRUE(out_.sent.empty()) << "a hello has no answer";
  for (const char* key : {"watcher", "dev", "ops"}) {
    from(key, msg::Notify{31, {}});
    auto ok = out_.take<msg::Ok>(key);
    ASSERT_EQ(ok.size(), 1u) << key;
    EXPECT_EQ(ok[0].job_id, 1u) << key;  // one observer woken
  }
  EXPECT_EQ(out_.take<msg::Wake>("watcher").size(), 3u);
  from("builder", msg::Notify{32, {}});
  msg::Error e = error_to("builder");
  EXPECT_EQ(e.code, ErrorCode::kUnauthorized);
  EXPECT_EQ(e.request_id, 32u);
  for (const char* key : {"builder", "dev"}) {
    from(key, msg::ObserverHello{});
    EXPECT_EQ(error_to(key).code, ErrorCode::kUnauthorized) << key;
  }
  from("ops", msg::Notify{33, {}});
  EXPECT_EQ(out_.take<msg::Ok>("ops").at(0).job_id, 1u) << "refused hellos register nobody";
  from("ops", msg::Wake{});
  EXPECT_EQ(error_to("ops").code, ErrorCode::kBadRequest) << "nobody sends the dispatcher a WAKE";
  EXPECT_EQ(d_->counter("rejected.unauthorized"), 3u);
}

// ---- ERROR request ids without CURVE ----------------------------------------------------

TEST_F(DispatcherTest, BadFieldErrorCarriesTheRequestId) {
  raw("cli", {msg::header_frame(), body(MessageType::kCancelRequest, uint64_t{77}, uint64_t{0})});
  auto e = out_.take<msg::Error>("cli");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].code, ErrorCode::kBadRequest);
  EXPECT_EQ(e[0].request_id, 77u);

  // A large id, packed as uint64.
  raw("cli", {msg::header_frame(), body(MessageType::kCommit, uint64_t{1} << 40,
                                        std::string("nothex"), std::string("main"), false)});
  e = out_.take<msg::Error>("cli");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].request_id, uint64_t{1} << 40);
  EXPECT_EQ(d_->counter("rejected.bad_field"), 2u);
}

TEST_F(DispatcherTest, RequestIdIsZeroWhenItCannotBeRead) {
  // The first field is not an integer.
  raw("cli",
      {msg::header_frame(), body(MessageType::kCancelRequest, std::string("x"), uint64_t{3})});
  // Negative.
  raw("cli", {msg::header_frame(), body(MessageType::kRetryRequest, int64_t{-4}, uint64_t{3})});
  // Not a request: a REGISTER's first field is a name.
  raw("cli", {msg::header_frame(), body(MessageType::kRegister, std::string("r"), uint32_t{0},
                                        std::vector<uint64_t>{})});
  // A runner message whose first field is an integer is still not a request.
  raw("cli", {msg::header_frame(), body(MessageType::kResult, uint64_t{9})});
  auto e = out_.take<msg::Error>("cli");
  ASSERT_EQ(e.size(), 4u);
  for (const auto& err : e) EXPECT_EQ(err.request_id, 0u) << err.text;
}

TEST(Peek, ReadsTypeAndRequestIdFromTheFirstBytesOnly) {
  EXPECT_EQ(msg::peek("").type, 0);
  EXPECT_EQ(msg::peek("\x91").type, 0) << "array without its type";
  const std::string commit = msg::encode(msg::Commit{300, commit_id(1), "main", false});
  EXPECT_EQ(msg::peek(commit).type, static_cast<uint8_t>(MessageType::kCommit));
  EXPECT_EQ(msg::peek(commit).request_id, 300u);
  EXPECT_EQ(msg::peek(commit.substr(0, 3)).request_id, 0u) << "truncated id";
  EXPECT_EQ(msg::peek(body(MessageType::kStatusRequest, uint64_t{0xffffffffffffffff})).request_id,
            0xffffffffffffffffu);
}

}  // namespace
}  // namespace simpleci::dispatcher
