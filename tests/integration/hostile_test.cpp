// Hostile input against the real dispatcher: every kind of bad frame is dropped and counted,
// and the dispatcher keeps serving real work afterwards.
#include <atomic>
#include <random>
#include <thread>

#include <gtest/gtest.h>
#include <zmq.hpp>

#include "messages/codec.h"
#include "net/transport.h"
#include "tests/integration/cluster.h"

namespace simpleci::itest {
namespace {

using namespace std::chrono_literals;

void send_raw(zmq::socket_t& s, const std::vector<std::string>& frames) {
  for (size_t i = 0; i < frames.size(); ++i) {
    auto flags = i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
    s.send(zmq::buffer(frames[i]), flags);
  }
}

// Waits for the next message on s that satisfies want, skipping others.
std::optional<msg::Message> next_reply(zmq::socket_t& s, milliseconds timeout,
                                       const std::function<bool(const msg::Message&)>& want) {
  std::optional<msg::Message> got;
  wait_until(
      [&] {
        while (auto r = net::recv(s, true)) {
          auto d = net::decode_frames(*r, 0);
          if (d.ok() && want(d.message)) {
            got = d.message;
            return true;
          }
        }
        return false;
      },
      timeout);
  return got;
}

TEST(Hostile, GarbageFramesAreCountedAndTheDispatcherKeepsServing) {
  Cluster c;
  ASSERT_TRUE(c.start_dispatcher()) << c.logs();
  zmq::context_t ctx(1);
  zmq::socket_t s = net::make_dealer(ctx, c.endpoint());
  const std::string hdr = msg::header_frame();
  std::string v1 = hdr;  // a version-1 peer (simpleCI before repositories and labels)
  v1[3] = 1;

  send_raw(s, {"just one frame"});                              // frame_count
  send_raw(s, {"XYZ\x01", msg::encode(msg::Heartbeat{})});     // bad_header
  send_raw(s, {hdr, "\xc1"});                                   // malformed (reserved byte)
  send_raw(s, {hdr, std::string("\xdd\xff\xff\xff\xff", 5)});   // array claiming 4 G elements
  send_raw(s, {hdr, std::string(200, '\x91')});                 // nesting far past the limit
  send_raw(s, {hdr, msg::encode(msg::Heartbeat{}) + "x"});      // trailing_bytes
  send_raw(s, {hdr, std::string("\x91\x63", 2)});               // unknown_type 99
  send_raw(s, {hdr, std::string("\x92\x0a\xc3", 3)});           // COMMIT with one bad field
  send_raw(s, {hdr, msg::encode(msg::Job{1, 1, std::string(40, 'a'), "main", "x", 1, 4096})});
  // COMMIT whose commit id is a path.
  {
    std::string body = msg::encode(msg::Commit{5, std::string(40, 'a'), "main", false});
    size_t at = body.find(std::string(40, 'a'));
    body.replace(at, 40, "../../../../../../../../../../etc/passwd");
    send_raw(s, {hdr, body});
  }
  // REGISTER with names that are paths or carry NUL.
  for (std::string name : {std::string("../evil"), std::string("a/b"), std::string("nul\0name", 8)}) {
    std::string body = msg::encode(msg::Register{"placeholder", 1, {}});
    body.replace(body.find("placeholder") - 1, 12, std::string(1, static_cast<char>(0xa0 | name.size())) + name);
    send_raw(s, {hdr, body});
  }
  std::mt19937 rng(42);
  for (int i = 0; i < 200; ++i) {  // random bytes
    std::string junk(rng() % 64 + 1, '\0');
    for (auto& ch : junk) ch = static_cast<char>(rng());
    send_raw(s, {hdr, junk});
  }

  // A version mismatch is answered with ERROR version_mismatch. (The body is a version-2 one:
  // only the header is read.)
  send_raw(s, {v1, msg::encode(msg::StatusRequest{1})});
  auto err = next_reply(s, 5s, [](const msg::Message& m) {
    auto* e = std::get_if<msg::Error>(&m);
    return e && e->code == msg::ErrorCode::kVersionMismatch;
  });
  EXPECT_TRUE(err) << "no version_mismatch answer\n" << c.logs();
  // A runner message from a peer that never registered is answered with REREGISTER.
  net::send(s, msg::Heartbeat{});
  auto rr = next_reply(s, 5s, [](const msg::Message& m) { return std::holds_alternative<msg::Reregister>(m); });
  EXPECT_TRUE(rr) << "no REREGISTER answer\n" << c.logs();

  // A flood: 100,000 messages.
  for (int i = 0; i < 100000; ++i) send_raw(s, {hdr, "\xc1"});

  std::optional<msg::StatusReply> st;
  ASSERT_TRUE(wait_until(
      [&] {
        st = query_status(c.endpoint(), 1s);
        return st && counter(*st, "rejected.malformed") >= 100000;
      },
      30s))
      << c.logs();
  for (const char* reason : {"rejected.frame_count", "rejected.bad_header", "rejected.version",
                             "rejected.malformed", "rejected.trailing_bytes",
                             "rejected.unknown_type", "rejected.bad_field",
                             "rejected.unregistered", "rejected.unexpected_type"}) {
    EXPECT_GE(counter(*st, reason), 1u) << reason;
  }
  EXPECT_GE(counter(*st, "rejected.bad_field"), 4u);  // the COMMIT and three bad names
  EXPECT_TRUE(st->runners.empty()) << "a runner registered under a bad name";
  EXPECT_TRUE(c.dispatcher().running());
  EXPECT_FALSE(fs::exists(c.results_dir() / ".." / ".." / "etc"));

  // And real work still flows.
  c.start_runner("r1");
  std::string id = c.upstream().git({"rev-parse", "HEAD"}).substr(0, 40);
  RunResult sub = run({bin("simpleci"), "submit", id, "--dispatcher", c.endpoint()});
  ASSERT_EQ(sub.exit_code, 0) << sub.output;
  auto r = c.wait_result(id);
  ASSERT_TRUE(r) << c.logs();
  EXPECT_EQ((*r)["status"], "passed");
}

// A dispatcher of protocol version 1 (simpleCI before repositories and labels), played by a
// ROUTER that answers everything as that dispatcher would: ERROR version_mismatch in a version-1
// header. Today's client, runner and observer each stop with one line that says why.
class OldDispatcher {
 public:
  OldDispatcher() : router_(ctx_, zmq::socket_type::router) {
    router_.set(zmq::sockopt::linger, 0);
    router_.bind("tcp://127.0.0.1:0");
    endpoint_ = router_.get(zmq::sockopt::last_endpoint);
    thread_ = std::thread([this] { serve(); });
  }
  ~OldDispatcher() {
    stop_ = true;
    thread_.join();
  }
  const std::string& endpoint() const { return endpoint_; }
  int answered() const { return answered_; }

 private:
  void serve() {
    const std::string v1_header("SCI\x01", 4);
    const std::string error =
        msg::encode(msg::Error{0, msg::ErrorCode::kVersionMismatch, "this dispatcher speaks protocol version 1"});
    while (!stop_) {
      zmq::pollitem_t item{router_.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, 50ms);
      while (auto r = net::recv(router_, true, 4)) {
        send_raw(router_, {std::string(static_cast<const char*>(r->frames[0].data()), r->frames[0].size()), v1_header,
                           error});
        ++answered_;
      }
    }
  }
  zmq::context_t ctx_{1};
  zmq::socket_t router_;
  std::string endpoint_;
  std::atomic<bool> stop_{false};
  std::atomic<int> answered_{0};
  std::thread thread_;
};

TEST(Hostile, AVersionOneDispatcherIsNamedInOneLineAndEveryPeerStops) {
  OldDispatcher old;
  TempDir tmp;
  GitRepo upstream = GitRepo::init(tmp.path() / "upstream");
  upstream.commit({{"a", "1"}}, "one");
  GitRepo::clone(upstream.dir(), tmp.path() / "runner-clone");
  GitRepo::clone(upstream.dir(), tmp.path() / "observer-clone");
  const std::string want = "the dispatcher speaks protocol version 1, this build speaks 2";

  const RunResult status = run({bin("simpleci"), "status", "--dispatcher", old.endpoint()});
  EXPECT_NE(status.exit_code, 0) << status.output;
  EXPECT_NE(status.output.find(want), std::string::npos) << status.output;

  const RunResult runner = run({bin("simpleci-runner"), "--dispatcher", old.endpoint(), "--name", "r1", "--log-dir",
                                (tmp.path() / "logs").string(), (tmp.path() / "runner-clone").string()},
                               {}, 20s);
  EXPECT_EQ(runner.exit_code, 1) << runner.output;
  EXPECT_NE(runner.output.find(want), std::string::npos) << runner.output;

  const RunResult observer = run({bin("simpleci-observer"), "--dispatcher", old.endpoint(), "--log-dir",
                                  (tmp.path() / "logs").string(), (tmp.path() / "observer-clone").string()},
                                 {}, 20s);
  EXPECT_EQ(observer.exit_code, 1) << observer.output;
  EXPECT_NE(observer.output.find(want), std::string::npos) << observer.output;
  EXPECT_GE(old.answered(), 3);
}

}  // namespace
}  // namespace simpleci::itest
