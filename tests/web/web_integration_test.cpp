// simpleci-web against a real dispatcher and runner: a plain HTTP client over a loopback socket
// asks what a page and Prometheus ask, and an event stream sees a submitted job finish.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>

#include "tests/integration/cluster.h"

namespace simpleci::itest {
namespace {

using namespace std::chrono_literals;

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// One TCP connection to 127.0.0.1:port; reads wait at most until a deadline.
class Conn {
 public:
  explicit Conn(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      close(fd_);
      fd_ = -1;
    }
  }
  ~Conn() {
    if (fd_ >= 0) close(fd_);
  }
  bool ok() const { return fd_ >= 0; }
  bool send_all(const std::string& s) {
    return ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size());
  }
  // Reads until pred(all read so far) or EOF or the deadline; returns whether pred held.
  bool read_until(const std::function<bool(const std::string&)>& pred, milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!pred(in_)) {
      auto left = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[65536];
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return pred(in_);
      in_.append(buf, static_cast<size_t>(n));
    }
    return true;
  }
  const std::string& in() const { return in_; }

 private:
  int fd_ = -1;
  std::string in_;
};

struct HttpResponse {
  int status = 0;
  std::string head, body;
};

// The body of a chunked response (what is complete of it).
std::string unchunk(std::string_view s) {
  std::string out;
  for (;;) {
    auto eol = s.find("\r\n");
    if (eol == std::string_view::npos) return out;
    size_t n = std::stoul(std::string(s.substr(0, eol)), nullptr, 16);
    if (n == 0 || s.size() < eol + 2 + n) return out;
    out.append(s.substr(eol + 2, n));
    s.remove_prefix(eol + 2 + n + 2);
  }
}

HttpResponse get(int port, const std::string& target, const std::string& method = "GET") {
  Conn c(port);
  HttpResponse r;
  if (!c.ok() || !c.send_all(method + " " + target + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")) return r;
  c.read_until([](const std::string&) { return false; }, 10s);  // to EOF
  const std::string& in = c.in();
  auto end = in.find("\r\n\r\n");
  if (in.size() < 12 || end == std::string::npos) return r;
  r.status = std::stoi(in.substr(9, 3));
  r.head = in.substr(0, end);
  r.body = in.substr(end + 4);
  if (has(r.head, "Transfer-Encoding: chunked")) r.body = unchunk(r.body);
  return r;
}

class Web : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(c.start_dispatcher()) << c.logs();
    c.start_runner("r1");
    fs::path addr = c.root() / "web.address";
    web = std::make_unique<Process>(
        "web",
        std::vector<std::string>{bin("simpleci-web"), "--dispatcher", c.endpoint(), "--listen", "127.0.0.1:0",
                                 "--address-file", addr.string(), "--log-dir", (c.root() / "logs").string(),
                                 "--log-level", "debug"},
        c.root() / "web.out");
    ASSERT_TRUE(wait_until([&] { return fs::exists(addr); }, 10s)) << web->log();
    std::string a = read_text(addr);
    port = std::stoi(a.substr(a.rfind(':') + 1));
  }

  std::string logs() const { return c.logs() + "\n--- web ---\n" + web->log(); }

  Cluster c;
  std::unique_ptr<Process> web;
  int port = 0;
};

uint64_t finished_passed(const std::string& metrics) {
  const std::string key = "simpleci_jobs_finished_total{status=\"passed\"} ";
  auto at = metrics.find(key);
  return at == std::string::npos ? 0 : std::stoull(metrics.substr(at + key.size()));
}

// Submits a commit whose test runs `body` and returns its job id (as text).
std::string submit(Cluster& c, const std::string& commit) {
  RunResult sub = run({bin("simpleci"), "submit", commit, "--branch", "main", "--dispatcher", c.endpoint()});
  if (sub.exit_code != 0) return "";
  auto sp = sub.output.rfind(' ');
  return sub.output.substr(sp + 1, sub.output.size() - sp - 2);
}

TEST_F(Web, JobsOutputMetricsAndBadgeOfARealJob) {
  auto m0 = get(port, "/metrics");
  ASSERT_EQ(m0.status, 200) << m0.body << logs();
  EXPECT_TRUE(has(m0.head, "Content-Type: text/plain; version=0.0.4")) << m0.head;
  EXPECT_TRUE(has(m0.body, "# TYPE simpleci_job_duration_seconds histogram")) << m0.body;
  uint64_t passed_before = finished_passed(m0.body);

  const std::string id = c.upstream().commit({{".simpleci/test", script(0, "seq 1 2000\n")}}, "passing");
  const std::string job = submit(c, id);
  ASSERT_FALSE(job.empty());
  ASSERT_TRUE(c.wait_result(id)) << logs();

  auto list = get(port, "/api/jobs?branch=main&status=passed&limit=5");
  ASSERT_EQ(list.status, 200) << list.body << logs();
  auto lj = nlohmann::json::parse(list.body);
  ASSERT_EQ(lj["jobs"].size(), 1u) << list.body;
  EXPECT_EQ(lj["jobs"][0]["commit"], id);
  EXPECT_EQ(nlohmann::json::parse(get(port, "/api/jobs?status=failed").body)["jobs"].size(), 0u);

  auto one = get(port, "/api/jobs/" + job);
  ASSERT_EQ(one.status, 200) << one.body;
  EXPECT_EQ(nlohmann::json::parse(one.body)["status"], "passed") << one.body;

  auto out = get(port, "/api/jobs/" + job + "/output");
  ASSERT_EQ(out.status, 200) << out.body << logs();
  EXPECT_TRUE(has(out.head, "Content-Type: text/plain; charset=utf-8")) << out.head;
  const std::string stored = read_text(c.results_dir() / id);
  EXPECT_TRUE(out.body == stored) << out.body.size() << " bytes, stored " << stored.size();
  auto tail = get(port, "/api/jobs/" + job + "/output?offset=10");
  EXPECT_TRUE(tail.body == stored.substr(10)) << tail.body.substr(0, 100);
  EXPECT_EQ(get(port, "/api/jobs/" + job + "/output?offset=99999999").body, "");

  EXPECT_TRUE(wait_until([&] { return finished_passed(get(port, "/metrics").body) == passed_before + 1; }, 5s))
      << get(port, "/metrics").body;
  // The format as Prometheus reads it (promtool comes with Debian's prometheus package, which
  // tools/install-deps installs).
  {
    fs::path file = c.root() / "metrics.txt";
    std::ofstream(file) << get(port, "/metrics").body;
    RunResult check = run({"sh", "-c", "promtool check metrics < " + file.string()});
    EXPECT_EQ(check.exit_code, 0) << check.output;
    EXPECT_EQ(check.output, "") << check.output;  // not even a lint warning
  }

  auto badge = get(port, "/badge/main.svg");
  EXPECT_EQ(badge.status, 200);
  EXPECT_TRUE(has(badge.head, "Content-Type: image/svg+xml")) << badge.head;
  EXPECT_TRUE(has(badge.body, ">passed<")) << badge.body;
  EXPECT_TRUE(has(get(port, "/badge/nothing-here.svg").body, ">none<"));
}

TEST_F(Web, OutputOfARunningJobStreamsUntilItEnds) {
  const fs::path go = c.root() / "go";
  const std::string id = c.upstream().commit(
      {{".simpleci/test", script(0, "echo first-line\nwhile [ ! -e " + go.string() + " ]; do sleep 0.02; done\nseq 1 5000\n")}},
      "waits for the test");
  const std::string job = submit(c, id);
  ASSERT_FALSE(job.empty());
  Conn out(port);
  // The stream is asked for while the job may still be queued: it waits for the first bytes.
  ASSERT_TRUE(out.send_all("GET /api/jobs/" + job + "/output HTTP/1.1\r\nHost: t\r\n\r\n"));
  ASSERT_TRUE(out.read_until([](const std::string& s) { return has(s, "first-line"); }, 20s)) << out.in() << logs();
  EXPECT_FALSE(fs::exists(c.results_dir() / id));  // streamed while running
  std::ofstream(go).put('\n');
  ASSERT_TRUE(out.read_until([](const std::string& s) { return s.ends_with("\r\n0\r\n\r\n"); }, 20s))
      << out.in() << logs();
  ASSERT_TRUE(c.wait_result(id)) << logs();
  std::string body = unchunk(out.in().substr(out.in().find("\r\n\r\n") + 4));
  const std::string stored = read_text(c.results_dir() / id);
  EXPECT_TRUE(body == stored) << body.size() << " bytes streamed, stored " << stored.size();
}

TEST_F(Web, StatusAndEventsFollowARealJob) {
  // The feed is up once the status names the runner.
  ASSERT_TRUE(wait_until([&] {
    auto r = get(port, "/api/status");
    return r.status == 200 && has(r.body, "\"r1\"") && has(r.body, "\"feed\":\"live\"");
  }, 15s)) << get(port, "/api/status").body << logs();

  Conn events(port);
  ASSERT_TRUE(events.ok());
  ASSERT_TRUE(events.send_all("GET /api/events HTTP/1.1\r\nHost: t\r\n\r\n"));
  ASSERT_TRUE(events.read_until([](const std::string& s) { return has(s, "\r\n\r\n"); }, 5s));
  EXPECT_TRUE(has(events.in(), "Content-Type: text/event-stream")) << events.in();
  EXPECT_TRUE(has(events.in(), "X-Accel-Buffering: no")) << events.in();

  const std::string id = c.upstream().commit({{".simpleci/test", script(0)}}, "passing");
  const std::string job = submit(c, id);
  ASSERT_FALSE(job.empty());
  ASSERT_TRUE(c.wait_result(id)) << logs();
  EXPECT_TRUE(events.read_until([&](const std::string& s) {
    return has(s, "event: job_finished\ndata: ") && has(s, "\"job_id\":" + job + ",");
  }, 10s)) << events.in() << logs();
  EXPECT_TRUE(has(events.in(), "event: job_queued")) << events.in();
  auto st = nlohmann::json::parse(get(port, "/api/status").body);
  ASSERT_FALSE(st["recent"].empty()) << st.dump();
  EXPECT_EQ(st["recent"][0]["commit"], id);

  // A reconnect from an id it has seen replays what followed.
  const std::string feed = std::to_string(st["feed_id"].get<uint64_t>());
  const uint64_t seq = st["seq"].get<uint64_t>();
  const std::string newest = st["event_id"].get<std::string>();
  EXPECT_EQ(newest, feed + "-" + std::to_string(seq));
  Conn again(port);
  ASSERT_TRUE(again.send_all("GET /api/events?last_event_id=" + feed + "-" + std::to_string(seq - 1) +
                             " HTTP/1.1\r\nHost: t\r\n\r\n"));
  EXPECT_TRUE(again.read_until([&](const std::string& s) { return has(s, "id: " + newest + "\n"); }, 5s))
      << again.in();
  EXPECT_FALSE(has(again.in(), "event: resync")) << again.in();
}

TEST_F(Web, RefusesWhatItDoesNotServe) {
  auto nf = get(port, "/no/such/page");
  EXPECT_EQ(nf.status, 404);
  EXPECT_TRUE(has(nf.body, "\"error\"")) << nf.body;
  EXPECT_EQ(get(port, "/api/jobs?limit=0").status, 400);
  EXPECT_TRUE(has(get(port, "/api/jobs?status=green").body, "'green'"));
  EXPECT_EQ(get(port, "/api/jobs/abc").status, 400);
  EXPECT_EQ(get(port, "/api/jobs/1/output?offset=x").status, 400);
  EXPECT_EQ(get(port, "/api/events?last_event_id=x").status, 400);
  EXPECT_EQ(get(port, "/api/events?last_event_id=42").status, 400);  // a bare seq names no feed
  EXPECT_EQ(get(port, "/api/status", "POST").status, 405);
  EXPECT_EQ(get(port, "/api/jobs/999999").status, 404) << logs();
  EXPECT_EQ(get(port, "/api/jobs/999999/output").status, 404) << logs();
}

TEST(WebFlags, BadListenIsAUsageError) {
  for (std::string bad : {"127.0.0.1", "127.0.0.1:99999", "example.com:80", "::1:80"}) {
    RunResult r = run({bin("simpleci-web"), "--listen", bad, "--log-dir", ""});
    EXPECT_EQ(r.exit_code, 2) << bad << ": " << r.output;
    EXPECT_TRUE(r.output.starts_with("simpleci-web: --listen: ")) << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  }
}

}  // namespace
}  // namespace simpleci::itest
