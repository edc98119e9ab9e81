// The server over loopback sockets with the feed driven by the test (no dispatcher: the request
// pool points at a port nobody listens on): event streams resume, resync, and a client that
// stops reading is closed while the others go on.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <thread>

#include <boost/asio/post.hpp>
#include <gtest/gtest.h>

#include "web/server.h"
#include "web/sse.h"

using namespace simpleci;
using namespace simpleci::web;
using namespace std::chrono_literals;

namespace {

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// A blocking loopback client; reads wait on a deadline.
class Client {
 public:
  Client(uint16_t port, const std::string& request, int rcvbuf = 0) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (rcvbuf) setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok_ = connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
          send(fd_, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size());
  }
  ~Client() { close(fd_); }
  bool ok() const { return ok_; }
  // Reads until pred holds, EOF (eof() then true) or the deadline.
  bool read_until(const std::function<bool(const std::string&)>& pred, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!pred(in_)) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0 || eof_) return false;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[65536];
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        eof_ = true;
        return pred(in_);
      }
      in_.append(buf, static_cast<size_t>(n));
    }
    return true;
  }
  const std::string& in() const { return in_; }
  bool eof() const { return eof_; }

 private:
  int fd_ = -1;
  bool ok_ = false, eof_ = false;
  std::string in_;
};

std::string events_request(const std::string& extra = "") {
  return "GET /api/events HTTP/1.1\r\nHost: t\r\n" + extra + "\r\n";
}

msg::Event queued(uint64_t seq, std::string branch = "main") {
  msg::Event e;
  e.feed = 3;
  e.seq = seq;
  e.kind = static_cast<uint32_t>(msg::EventKind::kJobQueued);
  msg::JobSummary j;
  j.job_id = seq;
  j.commit = std::string(40, 'c');
  j.branch = std::move(branch);
  e.jobs.push_back(j);
  e.queue_length = seq;
  return e;
}

class WebServer : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string err;
    ASSERT_TRUE(server.listen({"127.0.0.1", 0}, &err)) << err;
    port = server.local_endpoint().port();
    io = std::thread([this] { ioc.run(); });
  }
  void TearDown() override {
    ioc.stop();
    io.join();
    pool.stop();
  }
  // Runs fn on the I/O thread and returns its result.
  template <class F>
  auto on_io(F fn) {
    std::packaged_task<decltype(fn())()> task(fn);
    auto result = task.get_future();
    boost::asio::post(ioc, [&task] { task(); });
    return result.get();
  }
  // Waits (with a deadline) until pred, checked on the I/O thread, holds.
  bool io_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!on_io(pred)) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(10ms);
    }
    return true;
  }
  void snapshot(uint64_t seq) {
    msg::Snapshot s;
    s.feed = 3;
    s.seq = seq;
    on_io([&] { server.on_snapshot(s); return 0; });
  }

  boost::asio::io_context ioc{1};
  zmq::context_t zctx{1};
  RequestPool pool{zctx, cli::Dispatcher{"tcp://127.0.0.1:1", "", ""},
                   [this](std::function<void()> fn) { boost::asio::post(ioc, std::move(fn)); }, 1, 300ms};
  Server server{ioc, pool};
  uint16_t port = 0;
  std::thread io;
};

TEST_F(WebServer, EventStreamResumesFromLastEventIdOrResyncs) {
  snapshot(5);
  for (uint64_t s = 6; s <= 8; ++s) on_io([&] { server.on_event(queued(s)); return 0; });

  Client resume(port, events_request("Last-Event-ID: 3-6\r\n"));
  ASSERT_TRUE(resume.read_until([](const std::string& s) { return has(s, "id: 3-8\n"); }, 5s)) << resume.in();
  EXPECT_TRUE(has(resume.in(), "Content-Type: text/event-stream\r\n")) << resume.in();
  EXPECT_TRUE(has(resume.in(), "Cache-Control: no-cache\r\n"));
  EXPECT_TRUE(has(resume.in(), "X-Accel-Buffering: no\r\n"));
  EXPECT_FALSE(has(resume.in(), "id: 3-6\n"));
  EXPECT_TRUE(has(resume.in(), "id: 3-7\nevent: job_queued\ndata: {"));

  Client old(port, "GET /api/events?last_event_id=3-2 HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_TRUE(old.read_until([](const std::string& s) { return has(s, "event: resync\n"); }, 5s)) << old.in();
  EXPECT_TRUE(has(old.in(), "id: 3-8\nevent: resync\n")) << old.in();
  // The same seq counted in another feed (a dispatcher since restarted) replays nothing.
  Client other(port, events_request("Last-Event-ID: 4-6\r\n"));
  EXPECT_TRUE(other.read_until([](const std::string& s) { return has(s, "event: resync\n"); }, 5s)) << other.in();
  EXPECT_FALSE(has(other.in(), "event: job_queued")) << other.in();

  Client fresh(port, events_request());
  ASSERT_TRUE(fresh.read_until([](const std::string& s) { return has(s, "\r\n\r\n"); }, 5s));
  ASSERT_TRUE(io_until([&] { return server.context().hub->clients() == 4; }, 5s));
  on_io([&] { server.on_event(queued(9)); return 0; });
  EXPECT_TRUE(fresh.read_until([](const std::string& s) { return has(s, "id: 3-9\n"); }, 5s)) << fresh.in();
  EXPECT_FALSE(has(fresh.in(), "id: 3-8\n"));
  EXPECT_TRUE(resume.read_until([](const std::string& s) { return has(s, "id: 3-9\n"); }, 5s));

  // The web's feed breaks: every page is told to resync.
  on_io([&] { server.on_interrupted("no word from the dispatcher for 15 s"); return 0; });
  EXPECT_TRUE(fresh.read_until([](const std::string& s) { return has(s, "event: resync\n"); }, 5s)) << fresh.in();
}

TEST_F(WebServer, AClientThatStopsReadingIsClosedAndTheOthersGoOn) {
  snapshot(0);
  Client stalled(port, events_request(), 4096);
  Client reader(port, events_request());
  ASSERT_TRUE(reader.read_until([](const std::string& s) { return has(s, "\r\n\r\n"); }, 5s));
  ASSERT_TRUE(io_until([&] { return server.context().hub->clients() == 2; }, 5s));
  // Events of ~500 bytes until well past the budget plus what the kernel buffers.
  const std::string branch(200, 'b');
  uint64_t seq = 0;
  std::string last;
  for (int round = 0; round < 40 && on_io([&] { return server.context().hub->clients(); }) == 2; ++round) {
    on_io([&] {
      for (int i = 0; i < 1000; ++i) server.on_event(queued(++seq, branch));
      return 0;
    });
    last = "id: 3-" + std::to_string(seq) + "\n";
    ASSERT_TRUE(reader.read_until([&](const std::string& s) { return has(s, last); }, 10s)) << seq;
  }
  EXPECT_EQ(on_io([&] { return server.context().hub->clients(); }), 1u);
  on_io([&] { server.on_event(queued(++seq, branch)); return 0; });
  EXPECT_TRUE(reader.read_until([&](const std::string& s) { return has(s, "id: 3-" + std::to_string(seq) + "\n"); }, 5s));
}

TEST_F(WebServer, AnEventIdThatIsNotFeedDashSeqIs400) {
  snapshot(5);
  // A bare seq included: it cannot say which feed it counts in.
  for (std::string bad : {"6", "3-", "-6", "3-6x", "x", "3-18446744073709551616", "3-6-7"}) {
    for (std::string request : {events_request("Last-Event-ID: " + bad + "\r\n"),
                                "GET /api/events?last_event_id=" + bad + " HTTP/1.1\r\nHost: t\r\n\r\n"}) {
      Client c(port, request);
      ASSERT_TRUE(c.read_until([](const std::string& s) { return has(s, "}\n"); }, 5s)) << request << c.in();
      EXPECT_TRUE(c.in().starts_with("HTTP/1.1 400")) << request << c.in();
      EXPECT_TRUE(has(c.in(), "Last-Event-ID must be an event id <feed>-<seq>")) << c.in();
      EXPECT_TRUE(has(c.in(), "got '" + bad + "'")) << c.in();
    }
  }
  EXPECT_EQ(on_io([&] { return server.context().hub->clients(); }), 0u);
  // The header wins over the query (a browser reconnecting keeps the URL it first opened).
  Client both(port, "GET /api/events?last_event_id=6 HTTP/1.1\r\nHost: t\r\nLast-Event-ID: 3-5\r\n\r\n");
  ASSERT_TRUE(both.read_until([](const std::string& s) { return has(s, "\r\n\r\n"); }, 5s)) << both.in();
  EXPECT_TRUE(both.in().starts_with("HTTP/1.1 200")) << both.in();
}

TEST_F(WebServer, NoDispatcherIs503AndGarbageIs400) {
  Client jobs(port, "GET /api/jobs HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  ASSERT_TRUE(jobs.read_until([](const std::string& s) { return has(s, "}\n"); }, 5s)) << jobs.in();
  EXPECT_TRUE(jobs.in().starts_with("HTTP/1.1 503")) << jobs.in();
  EXPECT_TRUE(has(jobs.in(), "{\"error\":\"no answer from the dispatcher\"}")) << jobs.in();
  Client bad(port, "NOT HTTP AT ALL\r\n\r\n");
  ASSERT_TRUE(bad.read_until([](const std::string& s) { return has(s, "}\n"); }, 5s)) << bad.in();
  EXPECT_TRUE(bad.in().starts_with("HTTP/1.1 400")) << bad.in();
  // The status comes from the model, without the dispatcher.
  Client st(port, "GET /api/status HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  ASSERT_TRUE(st.read_until([](const std::string& s) { return has(s, "}\n"); }, 5s)) << st.in();
  EXPECT_TRUE(has(st.in(), "\"feed\":\"interrupted\"")) << st.in();
}

}  // namespace
