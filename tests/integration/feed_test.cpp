// The event feed against the real dispatcher and runner: a subscriber sees a submitted commit go
// queued -> started -> finished with consecutive seq, and a subscriber that never reads, while a
// job floods its output, is dropped (told so, counted) while the dispatcher's memory stays
// bounded and the other subscriber is served as before.
#include <deque>
#include <fstream>
#include <map>

#include <gtest/gtest.h>
#include <zmq.hpp>

#include "messages/codec.h"
#include "net/transport.h"
#include "tests/integration/cluster.h"

namespace simpleci::itest {
namespace {

using namespace std::chrono_literals;
using msg::EventKind;
using SteadyClock = std::chrono::steady_clock;

// The next message on a subscriber's DEALER, or nullopt when none decodes within timeout. An
// EVENTS is handed out as its EVENTs, one per call (the rest wait in `pending`, per socket).
std::optional<msg::Message> next(zmq::socket_t& s, milliseconds timeout) {
  static std::map<void*, std::deque<msg::Message>> pending;
  auto& mine = pending[s.handle()];
  if (mine.empty()) {
    zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, timeout) <= 0) return std::nullopt;
    auto r = net::recv(s, true, 4);
    if (!r || r->frames.size() != 2) return std::nullopt;
    msg::Decoded d = msg::decode(net::view(r->frames[0]), net::view(r->frames[1]));
    if (!d.ok()) return std::nullopt;
    auto* batch = std::get_if<msg::Events>(&d.message);
    if (!batch) return std::move(d.message);
    for (auto& e : batch->events) mine.emplace_back(std::move(e));
    if (mine.empty()) return std::nullopt;
  }
  msg::Message m = std::move(mine.front());
  mine.pop_front();
  return m;
}

// Reads until a message of type T arrives (others are handed to `seen`), within timeout.
template <class T>
std::optional<T> read_until(zmq::socket_t& s, milliseconds timeout,
                            const std::function<void(const msg::Message&)>& seen = {}) {
  const auto end = SteadyClock::now() + timeout;
  while (SteadyClock::now() < end) {
    auto m = next(s, std::chrono::duration_cast<milliseconds>(end - SteadyClock::now()));
    if (!m) continue;
    if (auto* t = std::get_if<T>(&*m)) return *t;
    if (seen) seen(*m);
  }
  return std::nullopt;
}

long peak_rss_kb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

class Feed : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(c.start_dispatcher()) << c.logs(); }
  std::string submit(const std::string& test_script) {
    const std::string n = std::to_string(++commits_);
    const std::string id = c.upstream().commit({{".simpleci/test", test_script}, {"n", n}}, n);
    const RunResult r = run({bin("simpleci"), "submit", id, "--dispatcher", c.endpoint()});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return id;
  }
  zmq::context_t ctx;
  Cluster c;
  int commits_ = 0;
};

TEST_F(Feed, ASubmittedCommitIsQueuedStartedAndFinishedInOrder) {
  c.start_runner("r1");
  zmq::socket_t sub = net::make_dealer(ctx, c.endpoint());
  ASSERT_TRUE(net::send(sub, msg::Subscribe{1, {}, false}));
  const auto snap = read_until<msg::Snapshot>(sub, 10s);
  ASSERT_TRUE(snap) << c.logs();
  EXPECT_EQ(snap->request_id, 1u);

  const std::string id = submit(script(0));
  uint64_t seq = snap->seq;
  std::vector<EventKind> kinds;  // of the commit's job
  bool in_order = true;
  const auto end = SteadyClock::now() + 30s;
  while (SteadyClock::now() < end && (kinds.empty() || kinds.back() != EventKind::kJobFinished)) {
    auto e = read_until<msg::Event>(sub, 1s);
    if (!e) continue;
    EXPECT_EQ(e->feed, snap->feed);
    const auto kind = static_cast<EventKind>(e->kind);
    if (kind == EventKind::kKeepalive) {
      in_order &= e->seq == seq;
      continue;
    }
    in_order &= e->seq == seq + 1;
    seq = e->seq;
    if (!e->jobs.empty() && e->jobs[0].commit == id) {
      kinds.push_back(kind);
      if (kind == EventKind::kJobFinished) {
        EXPECT_EQ(e->jobs[0].status, msg::JobStatus::kPassed);
      } else if (kind == EventKind::kJobStarted) {
        EXPECT_EQ(e->jobs[0].runner, "r1");
      }
    }
  }
  EXPECT_TRUE(in_order) << "seq rises by one per event";
  EXPECT_EQ(kinds, (std::vector<EventKind>{EventKind::kJobQueued, EventKind::kJobStarted,
                                           EventKind::kJobFinished}))
      << c.logs();
  ASSERT_TRUE(net::send(sub, msg::Unsubscribe{2}));
  EXPECT_TRUE(read_until<msg::Ok>(sub, 5s));
}

TEST_F(Feed, ASubscriberThatNeverReadsIsDroppedAndTheDispatcherStaysSmall) {
  c.start_runner("r1", 4);
  // Holds one message and a 4 KiB socket buffer: what it is sent stays with the dispatcher.
  zmq::socket_t deaf(ctx, zmq::socket_type::dealer);
  deaf.set(zmq::sockopt::rcvhwm, 1);
  deaf.set(zmq::sockopt::rcvbuf, 4096);
  deaf.set(zmq::sockopt::linger, 0);
  deaf.connect(c.endpoint());
  ASSERT_TRUE(net::send(deaf, msg::Subscribe{1, {}, true}));
  zmq::socket_t reader = net::make_dealer(ctx, c.endpoint());
  ASSERT_TRUE(net::send(reader, msg::Subscribe{1, {}, false}));
  ASSERT_TRUE(read_until<msg::Snapshot>(reader, 10s)) << c.logs();
  const long before_kb = peak_rss_kb(c.dispatcher().pid());

  // Four jobs print 8 MB each at once, as fast as the runner can stream it: 32 MB for the deaf
  // subscriber, which takes 4 KiB (and the kernel buffers a few MB).
  std::vector<std::string> ids;
  const std::string flood = "#!/bin/sh\nhead -c 8000000 /dev/zero | tr '\\0' x\nexit 0\n";
  for (int i = 0; i < 4; ++i) ids.push_back(submit(flood));
  uint64_t dropped = 0;
  std::string counters;
  ASSERT_TRUE(wait_until(
      [&] {
        auto s = query_status(c.endpoint());
        if (!s) return false;
        dropped = counter(*s, "feed.dropped");
        counters.clear();
        for (const auto& k : s->counters) counters += k.name + "=" + std::to_string(k.value) + " ";
        return dropped > 0;
      },
      60s))
      << counters << "\n" << c.logs();
  EXPECT_EQ(dropped, 1u);
  // The other subscriber hears the jobs end as usual.
  size_t finished = 0;
  const auto end = SteadyClock::now() + 60s;
  while (finished < ids.size() && SteadyClock::now() < end) {
    auto e = read_until<msg::Event>(reader, 1s);
    finished += e && e->kind == uint32_t(EventKind::kJobFinished);
  }
  ASSERT_EQ(finished, ids.size()) << c.logs();
  const long peak_kb = peak_rss_kb(c.dispatcher().pid());
  std::printf("dispatcher peak RSS: %ld KiB before the flood, %ld KiB after\n", before_kb, peak_kb);
  // The results (decoded, stored, written) are most of the growth; the 32 MB for the deaf peer
  // are not held.
  EXPECT_LT(peak_kb, 100 * 1024);

  // What the deaf subscriber was sent ends with the one EVENT dropped.
  size_t outputs = 0, drops = 0;
  msg::Message last;
  while (auto m = next(deaf, 2s)) {
    outputs += std::holds_alternative<msg::JobOutput>(*m);
    if (auto* e = std::get_if<msg::Event>(&*m)) drops += e->kind == uint32_t(EventKind::kDropped);
    last = std::move(*m);
  }
  EXPECT_GT(outputs, 0u);
  EXPECT_EQ(drops, 1u);
  ASSERT_TRUE(std::holds_alternative<msg::Event>(last));
  EXPECT_EQ(std::get<msg::Event>(last).kind, uint32_t(EventKind::kDropped));
}

}  // namespace
}  // namespace simpleci::itest
