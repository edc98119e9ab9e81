// Tests that try to outlive their job with the real runner: a daemon in a new session
// (setsid), a double fork and nohup. None may be alive 2 s after the job ends, nor 2 s after
// the runner is killed with SIGKILL in the middle of the job.
#include <signal.h>

#include <fstream>

#include <gtest/gtest.h>

#include "tests/integration/cluster.h"

namespace simpleci::itest {
namespace {

using namespace std::chrono_literals;

// Each sleep gets a duration no other process on the machine has: the marker.
struct Escapers {
  explicit Escapers(const fs::path& root) : unique(std::to_string(::getpid()) + "0" + std::to_string(std::hash<std::string>{}(root.string()) % 100000)) {}
  std::string markers(const char* d) const { return std::string(d) + unique; }
  // Starts the three, waits until they run, then does `then`.
  std::string script(const std::string& then) const {
    return "setsid sh -c 'exec sleep " + markers("123.") + "' &\n" +
           "( sh -c 'sleep " + markers("124.") + " &' & )\n" +
           "nohup sleep " + markers("125.") + " > /dev/null 2>&1 &\n" +
           "until pgrep -f " + markers("123.") + " >/dev/null && pgrep -f " + markers("124.") +
           " >/dev/null; do sleep 0.01; done\n" + then;
  }
  // Sleeps alive with a marker (not the shells or pgreps that mention one).
  size_t alive() const {
    size_t n = 0;
    for (const char* d : {"123.", "124.", "125."}) {
      for (pid_t p : processes_with(markers(d))) n += read_text("/proc/" + std::to_string(p) + "/comm") == "sleep\n";
    }
    return n;
  }
  ~Escapers() {
    for (const char* d : {"123.", "124.", "125."}) {
      for (pid_t p : processes_with(markers(d))) ::kill(p, SIGKILL);
    }
  }
  std::string unique;
};

// Commits a test that starts the escapers and then does `then`, and submits it.
std::string submit(Cluster& c, const Escapers& e, const std::string& then) {
  std::string id = c.upstream().commit({{".simpleci/test", script(0, e.script(then))}}, "escapes");
  RunResult sub = run({bin("simpleci"), "submit", id, "--branch", "main", "--dispatcher", c.endpoint()});
  EXPECT_EQ(sub.exit_code, 0) << sub.output;
  return id;
}

long long ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - t0).count();
}

TEST(Escapes, NothingTheTestStartedOutlivesItsJob) {
  Cluster c;
  ASSERT_TRUE(c.start_dispatcher()) << c.logs();
  c.start_runner("r1");
  Escapers e(c.root());
  std::string id = submit(c, e, "");
  auto r = c.wait_result(id, 60s);
  ASSERT_TRUE(r) << c.logs();
  EXPECT_EQ((*r)["status"], "passed") << r->dump();
  auto t0 = std::chrono::steady_clock::now();
  bool gone = wait_until([&] { return e.alive() == 0; }, 2s);
  std::printf("[ figures  ] job ended -> its escaped processes gone: %lld ms\n", ms_since(t0));
  EXPECT_TRUE(gone) << e.alive() << " escaped process(es) outlived the job";
}

TEST(Escapes, NothingTheTestStartedOutlivesAKilledRunner) {
  Cluster c;
  ASSERT_TRUE(c.start_dispatcher()) << c.logs();
  c.start_runner("r1");
  Escapers e(c.root());
  submit(c, e, "sleep 60");
  ASSERT_TRUE(wait_until([&] { return e.alive() == 3; }, 30s)) << e.alive() << "\n" << c.logs();
  auto t0 = std::chrono::steady_clock::now();
  c.runner("r1").signal(SIGKILL);
  bool gone = wait_until([&] { return e.alive() == 0; }, 2s);
  std::printf("[ figures  ] runner killed -> escaped processes gone: %lld ms\n", ms_since(t0));
  EXPECT_TRUE(gone) << e.alive() << " escaped process(es) outlived the runner";
}

}  // namespace
}  // namespace simpleci::itest
