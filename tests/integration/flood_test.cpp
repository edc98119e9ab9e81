// Issue 7, items 4 and 5, against the real dispatcher: peers that send cheap requests and never
// read the replies, or one frame of millions of tiny msgpack values, must not make it big; one
// peer's flood must not delay another peer's COMMIT; and its memory stays flat over many
// requests. Memory is the dispatcher's VmHWM (peak RSS) from /proc, so a short peak is caught.
#include <chrono>
#include <fstream>
#include <functional>

#include <msgpack.hpp>

#include <gtest/gtest.h>
#include <zmq.hpp>

#include "dispatcher/results.h"
#include "dispatcher/store.h"
#include "messages/codec.h"
#include "net/reply_budget.h"
#include "net/transport.h"
#include "tests/integration/cluster.h"

namespace simpleci::itest {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

constexpr long kMaxRssKb = 150 * 1024;  // the bound issue 7 sets under every attack

struct Memory {
  long rss_kb = 0, peak_kb = 0;
};
Memory memory_of(pid_t pid) {
  Memory m;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) m.rss_kb = std::stol(line.substr(6));
    if (line.rfind("VmHWM:", 0) == 0) m.peak_kb = std::stol(line.substr(6));
  }
  return m;
}

std::string commit_id(size_t n) {
  char buf[41];
  std::snprintf(buf, sizeof buf, "%040zx", n + 1);
  return buf;
}

// Fills the dispatcher's store before it starts: `finished` final jobs, `queued` queued jobs,
// and (when big_output > 0) one more final job for commit_id(0) ... whose output has that size.
// A store as a dispatcher would have left it: finished jobs (with their result files, which the
// dispatcher would otherwise write at start) and queued ones.
void populate(const Cluster& cl, size_t finished, size_t queued, size_t big_output = 0) {
  const fs::path& state_dir = cl.state_dir();
  fs::create_directories(state_dir);
  fs::create_directories(cl.results_dir());
  dispatcher::Store st;
  std::string err;
  ASSERT_TRUE(st.open((state_dir / "simpleci.db").string(), &err)) << err;
  ASSERT_TRUE(st.begin(&err)) << err;
  const int64_t t0 = 1'700'000'000'000;
  for (size_t i = 0; i < finished + queued; ++i) {
    const std::string c = commit_id(i + 1);
    const uint64_t id = st.insert_job(c, "main", t0 + static_cast<int64_t>(i), &err);
    ASSERT_NE(id, 0u) << err;
    if (i >= finished) continue;
    msg::JobSummary s{id, c, "main", msg::JobStatus::kPassed, 0, 1000, "r1", 1,
                      t0 + static_cast<int64_t>(i), t0 + static_cast<int64_t>(i), t0 + static_cast<int64_t>(i) + 1000, false};
    ASSERT_TRUE(st.finish(s, "ok\n", &err)) << err;
    ASSERT_TRUE(dispatcher::write_result_files(cl.results_dir(), s, "ok\n", false, &err)) << err;
  }
  if (big_output > 0) {
    const uint64_t id = st.insert_job(commit_id(0), "main", t0, &err);
    ASSERT_NE(id, 0u) << err;
    msg::JobSummary s{id, commit_id(0), "main", msg::JobStatus::kFailed, 1, 1000, "r1", 1,
                      t0, t0, t0 + 1000, true};
    ASSERT_TRUE(st.finish(s, std::string(big_output, 'x'), &err)) << err;
    ASSERT_TRUE(dispatcher::write_result_files(cl.results_dir(), s, std::string(big_output, 'x'), false, &err)) << err;
  }
  ASSERT_TRUE(st.commit(&err)) << err;
}

// A peer that sends and never reads: its socket holds at most one message and a small kernel
// buffer, so what it is sent stays queued in the dispatcher.
zmq::socket_t deaf_peer(zmq::context_t& ctx, const std::string& ep) {
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::rcvhwm, 1);
  s.set(zmq::sockopt::rcvbuf, 4096);
  s.set(zmq::sockopt::sndhwm, 0);
  s.set(zmq::sockopt::linger, 0);
  s.connect(ep);
  return s;
}

void send_raw(zmq::socket_t& s, const std::string& body) {
  const std::string hdr = msg::header_frame();
  s.send(zmq::buffer(hdr), zmq::send_flags::sndmore);
  s.send(zmq::buffer(body), zmq::send_flags::none);
}

// `simpleci status` (the real client) with a 1 s budget; returns its wall time.
milliseconds client_status(const std::string& ep, RunResult* out) {
  const auto t0 = SteadyClock::now();
  *out = run({bin("simpleci"), "status", "--dispatcher", ep, "--timeout-ms", "1000"}, {}, 10s);
  return std::chrono::duration_cast<milliseconds>(SteadyClock::now() - t0);
}

// While the attack is under way: `simpleci status` answers within 1 s and the dispatcher's peak
// RSS stays under the bound, checked until done() (the dispatcher got through the attack) and
// for a while after the attacker has gone.
void hold_out(Cluster& c, const std::function<bool(const msg::StatusReply&)>& done,
              const std::function<void()>& leave) {
  bool finished = false;
  milliseconds slowest{0};
  const auto deadline = SteadyClock::now() + 40s;
  while (!finished && SteadyClock::now() < deadline) {
    RunResult r;
    const milliseconds took = client_status(c.endpoint(), &r);
    slowest = std::max(slowest, took);
    // --timeout-ms 1000: exit 0 means the answer came within 1 s of the request (the wall
    // time printed below also counts starting the process).
    ASSERT_EQ(r.exit_code, 0) << "simpleci status failed during the attack after " << took.count()
                              << " ms (dispatcher peak RSS "
                              << memory_of(c.dispatcher().pid()).peak_kb << " KiB): " << r.output;
    const Memory m = memory_of(c.dispatcher().pid());
    ASSERT_LT(m.peak_kb, kMaxRssKb) << "dispatcher RSS " << m.rss_kb << " KiB";
    auto st = query_status(c.endpoint(), 1s);
    finished = st && done(*st);
  }
  EXPECT_TRUE(finished) << "the dispatcher did not get through the attack" << c.logs();
  leave();
  RunResult r;
  client_status(c.endpoint(), &r);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  const Memory m = memory_of(c.dispatcher().pid());
  std::printf("dispatcher: RSS %ld KiB, peak %ld KiB; slowest `simpleci status` %lld ms (wall, with process start)\n",
              m.rss_kb, m.peak_kb, static_cast<long long>(slowest.count()));
  EXPECT_LT(m.peak_kb, kMaxRssKb);
}

// A peer that never reads sends n requests (make(i) for i = 1..n); the dispatcher must stay
// within its memory bound and answer others while at least `refused` replies are refused for the
// peer's budget, and after the peer leaves.
void flood_unread(Cluster& c, uint64_t n, const std::function<msg::ResultsRequest(uint64_t)>& make,
                  uint64_t refused) {
  zmq::context_t ctx(1);
  auto attacker = std::make_unique<zmq::socket_t>(deaf_peer(ctx, c.endpoint()));
  for (uint64_t i = 1; i <= n; ++i) send_raw(*attacker, msg::encode(make(i)));
  hold_out(c, [refused](const msg::StatusReply& s) { return counter(s, "send.over_budget") >= refused; },
           [&] { attacker.reset(); });
}

TEST(Flood, ResultsRequestsWithUnreadRepliesKeepMemoryBounded) {
  Cluster c;
  populate(c, 50000, 0);
  ASSERT_TRUE(c.start_dispatcher()) << c.logs();
  // ~130 KB per reply: the budget (32 MiB) holds a few hundred; the rest are refused.
  flood_unread(c, 3000, [](uint64_t i) { return msg::ResultsRequest{i, "", 1000, false}; }, 2500);
}

TEST(Flood, ResultsRequestsForOneBigOutputKeepMemoryBounded) {
  Cluster c;
  populate(c, 1000, 0, msg::kMaxOutputCap);
  ASSERT_TRUE(c.start_dispatcher()) << c.logs();
  flood_unread(c, 30, [](uint64_t i) { return msg::ResultsRequest{i, commit_id(0), 1, true}; }, 29);
  // The output is still served to a client that reads.
  auto r = query_results(c.endpoint(), commit_id(0), 10s);
  ASSERT_TRUE(r);
}

// [1000 x [1000 x [15 small ints]]]: ~16 MB, ~16 million msgpack values.
std::string nested_bomb() {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_array(1000);
  for (int i = 0; i < 1000; ++i) {
    pk.pack_array(1000);
    for (int j = 0; j < 1000; ++j) {
      pk.pack_array(15);
      for (int k = 0; k < 15; ++k) pk.pack_uint8(1);
    }
  }
  return std::string(buf.data(), buf.size());
}

TEST(Flood, FrameOfNestedSmallArraysIsRefusedBeforeUnpacking) {
  Cluster c;
  populate(c, 1000, 0);
  ASSERT_TRUE(c.start_dispatcher()) << c.logs();
  zmq::context_t ctx(1);
  auto attacker = std::make_unique<zmq::socket_t>(deaf_peer(ctx, c.endpoint()));
  const std::string bomb = nested_bomb();
  ASSERT_LT(bomb.size(), static_cast<size_t>(msg::kMaxFrameBytes));
  for (int i = 0; i < 3; ++i) send_raw(*attacker, bomb);
  hold_out(c, [](const msg::StatusReply& s) { return counter(s, "rejected.malformed") >= 3; },
           [&] { attacker.reset(); });
}

// Sends COMMIT on its own socket while `flood` keeps another socket busy (500 + `requests`
// requests), and returns how long ACCEPTED took.
milliseconds commit_latency(Cluster& c, const std::function<msg::Message(uint64_t)>& flood,
                            int requests) {
  EXPECT_TRUE(query_status(c.endpoint(), 10s)) << "the dispatcher did not come up" << c.logs();
  zmq::context_t ctx(1);
  zmq::socket_t client = net::make_dealer(ctx, c.endpoint());
  zmq::socket_t attacker = deaf_peer(ctx, c.endpoint());
  uint64_t sent = 0;
  auto send_flood = [&](int n) {
    for (int i = 0; i < n; ++i) send_raw(attacker, msg::encode(flood(++sent)));
  };
  // A first wave; its first reply means the dispatcher is at work on it. Then the flood proper,
  // and the COMMIT right behind it: everything is waiting in the dispatcher's queues at once.
  send_flood(500);
  zmq::pollitem_t item{attacker.handle(), 0, ZMQ_POLLIN, 0};
  zmq::poll(&item, 1, 30s);
  EXPECT_TRUE(net::recv(attacker, true, 2)) << "no reply to the flood within 30 s";
  send_flood(requests);
  const auto t0 = SteadyClock::now();
  net::send(client, msg::Commit{7, std::string(40, 'f'), "main", false});
  std::optional<milliseconds> took;
  wait_until(
      [&] {
        while (auto r = net::recv(client, true, 2)) {
          auto d = net::decode_frames(*r, 0);
          if (d.ok() && std::holds_alternative<msg::Accepted>(d.message)) {
            took = std::chrono::duration_cast<milliseconds>(SteadyClock::now() - t0);
            return true;
          }
        }
        return false;
      },
      60s);
  EXPECT_TRUE(took) << "no ACCEPTED within 60 s" << c.logs();
  return took.value_or(60s);
}

// Item 5: a COMMIT from one socket behind 4,000 STATUS requests from another, with 50,000 jobs
// queued, used to wait 16 s. The bound is generous for a busy 2-core machine; the real figure
// lives in `simpleci-bench flood` and is printed here.
TEST(Flood, StatusFloodDoesNotDelayAnotherPeersCommit) {
  Cluster c;
  populate(c, 0, 50000);
  ASSERT_TRUE(c.start_dispatcher()) << c.logs();
  const milliseconds took =
      commit_latency(c, [](uint64_t i) { return msg::Message(msg::StatusRequest{i}); }, 4000);
  std::printf("COMMIT answered after %lld ms behind 4000 STATUS requests\n",
              static_cast<long long>(took.count()));
  EXPECT_LT(took, 1000ms);
}

TEST(Flood, ResultsFloodDoesNotDelayAnotherPeersCommit) {
  Cluster c;
  populate(c, 50000, 0);
  ASSERT_TRUE(c.start_dispatcher()) << c.logs();
  const milliseconds took = commit_latency(
      c, [](uint64_t i) { return msg::Message(msg::ResultsRequest{i, "", 1000, false}); }, 4000);
  std::printf("COMMIT answered after %lld ms behind 4000 RESULTS requests\n",
              static_cast<long long>(took.count()));
  EXPECT_LT(took, 1000ms);
}

// Flat memory for months, the dispatcher's part: 10,000 mixed requests from a client that reads
// its replies; RSS after the first 2,000 (warm caches) and at the end differ by little.
TEST(Flood, RssStaysFlatOverTenThousandRequests) {
  Cluster c;
  populate(c, 5000, 0, 1 << 20);
  ASSERT_TRUE(c.start_dispatcher()) << c.logs();
  zmq::context_t ctx(1);
  zmq::socket_t s = net::make_dealer(ctx, c.endpoint());
  long warm_kb = 0;
  for (uint64_t i = 1; i <= 10000; ++i) {
    msg::Message req;
    switch (i % 4) {
      case 0: req = msg::StatusRequest{i}; break;
      case 1: req = msg::ResultsRequest{i, i % 8 == 1 ? commit_id(0) : "", 100, i % 8 == 1}; break;
      case 2: req = msg::WatchRequest{i, 1 + i % 5000, 0, 0}; break;
      default: req = msg::Commit{i, commit_id(100000 + i), "main", false}; break;
    }
    ASSERT_TRUE(net::send(s, req));
    bool answered = false;
    const auto deadline = SteadyClock::now() + 10s;
    while (!answered && SteadyClock::now() < deadline) {
      zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, 100ms);
      while (auto r = net::recv(s, true, 2)) {
        auto d = net::decode_frames(*r, 0);
        answered |= d.ok() && net::reply_request_id(d.message) == i;
      }
    }
    ASSERT_TRUE(answered) << "request " << i << " not answered" << c.logs();
    if (i == 2000) warm_kb = memory_of(c.dispatcher().pid()).rss_kb;
  }
  const Memory end = memory_of(c.dispatcher().pid());
  std::printf("dispatcher RSS after 2,000 requests %ld KiB, after 10,000 %ld KiB (peak %ld KiB)\n",
              warm_kb, end.rss_kb, end.peak_kb);
  EXPECT_LT(end.rss_kb - warm_kb, 8 * 1024) << "RSS grew from " << warm_kb << " to " << end.rss_kb;
}

}  // namespace
}  // namespace simpleci::itest
