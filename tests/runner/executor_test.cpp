// The real executor on real child processes. These wait for children with a deadline; the
// timeout case uses a 1-second job timeout because the kernel's clock is what is being tested.
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "runner/executor.h"
#include "tests/integration/harness.h"

namespace simpleci::runner {
namespace {

using itest::processes_with;

std::string supervisor() { return itest::bin("simpleci-supervise"); }

std::vector<Finished> run_until_done(ProcessExecutor& ex, std::chrono::seconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  std::vector<Finished> done;
  while (done.empty() && std::chrono::steady_clock::now() < deadline) {
    done = ex.poll();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return done;
}

RunSpec shell(uint64_t id, const std::string& script, uint32_t timeout_s = 30) {
  RunSpec s;
  s.job_id = id;
  s.workdir = "/tmp";
  s.argv = {"/bin/sh", "-c", script};
  s.env = {"SIMPLECI_JOB=" + std::to_string(id), "CI=true"};
  s.timeout_s = timeout_s;
  s.output_cap = 4096;
  return s;
}

TEST(ProcessExecutor, ReportsExitCodeAndInterleavedOutputAndEnvironment) {
  SystemClock clock;
  ProcessExecutor ex(clock, 1000, supervisor());
  std::string err;
  ASSERT_TRUE(ex.start(shell(7, "echo out $SIMPLECI_JOB $CI; echo err >&2; exit 3"), &err)) << err;
  auto done = run_until_done(ex, std::chrono::seconds(20));
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].status, msg::JobStatus::kFailed);
  EXPECT_EQ(done[0].exit_code, 3);
  EXPECT_EQ(done[0].output, "out 7 true\nerr\n");
  EXPECT_EQ(ex.running(), 0u);
}

TEST(ProcessExecutor, PassesOnExitZero) {
  SystemClock clock;
  ProcessExecutor ex(clock, 1000, supervisor());
  std::string err;
  ASSERT_TRUE(ex.start(shell(1, "true"), &err));
  auto done = run_until_done(ex, std::chrono::seconds(20));
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].status, msg::JobStatus::kPassed);
}

// The runner ignores SIGPIPE (and blocks the signals it reads from a signalfd); a test must
// start with every signal at its default and none blocked, as from a shell.
TEST(ProcessExecutor, TheTestStartsWithDefaultSignalsWhateverTheRunnerIgnoresOrBlocks) {
  struct sigaction ignore {}, saved {};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &ignore, &saved);
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  ::pthread_sigmask(SIG_BLOCK, &block, &old);
  SystemClock clock;
  ProcessExecutor ex(clock, 1000, supervisor());
  std::string err;
  ASSERT_TRUE(ex.start(shell(4, "exec grep -E '^Sig(Ign|Blk)' /proc/self/status"), &err)) << err;
  auto done = run_until_done(ex, std::chrono::seconds(20));
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ::sigaction(SIGPIPE, &saved, nullptr);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].output, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
}

// The runner sleeps on fds() instead of polling: a job's end makes one of them readable, and
// max_sleep() never lets it sleep past the job's timeout.
TEST(ProcessExecutor, AJobsEndWakesTheSleeperAndItsTimeoutBoundsTheSleep) {
  FakeClock clock;
  ProcessExecutor ex(clock, 1000, supervisor());
  std::string err;
  char tmpl[] = "/tmp/simpleci-wake-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl), gate = dir + "/gate";
  ASSERT_EQ(::mkfifo(gate.c_str(), 0600), 0);
  // The test waits for the gate (a FIFO) to open, so it runs until this test lets it end.
  ASSERT_TRUE(ex.start(shell(5, "read line < " + gate, 30), &err)) << err;
  EXPECT_EQ(ex.fds().size(), 2u) << "the output pipe and the supervisor's pidfd";
  EXPECT_EQ(ex.max_sleep(), Millis(1000));
  clock.advance(Millis(29'700));
  EXPECT_EQ(ex.max_sleep(), Millis(300));
  ASSERT_TRUE(ex.poll().empty());
  {
    std::ofstream open_gate(gate);  // opening it lets `read` see the end of the file
  }
  std::vector<Finished> done;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (done.empty() && std::chrono::steady_clock::now() < deadline) {
    std::vector<pollfd> fds;
    for (int fd : ex.fds()) fds.push_back({fd, POLLIN, 0});
    ASSERT_GT(::poll(fds.data(), fds.size(), 20'000), 0) << "nothing woke the sleeper";
    done = ex.poll();
  }
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].status, msg::JobStatus::kFailed) << "read at the end of the gate fails";
  std::filesystem::remove_all(dir);
}

TEST(ProcessExecutor, AMissingSupervisorIsOneClearLine) {
  std::string err;
  EXPECT_EQ(supervisor_beside("/nonexistent/simpleci-runner", &err), "");
  EXPECT_NE(err.find("/nonexistent/simpleci-supervise"), std::string::npos) << err;
  EXPECT_EQ(supervisor_beside(supervisor(), &err), supervisor());
  SystemClock clock;
  ProcessExecutor ex(clock, 1000, "/nonexistent/simpleci-supervise");
  EXPECT_FALSE(ex.start(shell(6, "true"), &err));
  EXPECT_NE(err.find("cannot start /nonexistent/simpleci-supervise"), std::string::npos) << err;
  EXPECT_EQ(ex.running(), 0u);
}

TEST(Supervisor, BadArgumentsAreOneLineAndExit124) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {}, {"10", "1", "/tmp"}, {"x", "1", "/tmp", "/bin/true"}, {"10", "0", "/tmp", "/bin/true"}}) {
    std::vector<std::string> argv{supervisor()};
    argv.insert(argv.end(), args.begin(), args.end());
    itest::RunResult r = itest::run(argv);
    EXPECT_EQ(r.exit_code, 124) << r.output;
    EXPECT_EQ(r.output.rfind("usage: simpleci-supervise", 0), 0u) << r.output;
  }
}

TEST(ProcessExecutor, TimeoutKillsTheWholeProcessGroup) {
  SystemClock clock;
  ProcessExecutor ex(clock, 200, supervisor());
  char tmpl[] = "/tmp/simpleci-exec-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  std::string pidfile = dir + "/grandchild";
  std::string err;
  // A grandchild that ignores SIGTERM, and a parent that waits for it.
  ASSERT_TRUE(ex.start(shell(2, "sh -c 'trap \"\" TERM; echo $$ > " + pidfile + "; sleep 60' & wait", 1), &err));
  auto done = run_until_done(ex, std::chrono::seconds(30));
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].status, msg::JobStatus::kTimeout);
  std::ifstream in(pidfile);
  pid_t grandchild = 0;
  in >> grandchild;
  ASSERT_GT(grandchild, 0);
  bool gone = false;
  for (int i = 0; i < 400 && !gone; ++i) {
    gone = ::kill(grandchild, 0) != 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(gone) << "grandchild " << grandchild << " survived the timeout";
  std::filesystem::remove_all(dir);
}

TEST(ProcessExecutor, CancelledJobEndsWithoutAResult) {
  SystemClock clock;
  ProcessExecutor ex(clock, 200, supervisor());
  std::string err;
  ASSERT_TRUE(ex.start(shell(3, "sleep 60"), &err));
  ex.cancel(3);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (ex.running() > 0 && std::chrono::steady_clock::now() < deadline) {
    EXPECT_TRUE(ex.poll().empty());
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(ex.running(), 0u);
}

TEST(ProcessExecutor, FloodOfOutputIsCapped) {
  SystemClock clock;
  ProcessExecutor ex(clock, 200, supervisor());
  std::string err;
  RunSpec s = shell(4, "head -c 50000000 /dev/zero | tr '\\0' y; echo; echo last-line");
  ASSERT_TRUE(ex.start(s, &err));
  auto done = run_until_done(ex, std::chrono::seconds(60));
  ASSERT_EQ(done.size(), 1u);
  EXPECT_TRUE(done[0].truncated);
  EXPECT_LE(done[0].output.size(), 4096u);
  EXPECT_NE(done[0].output.find("last-line"), std::string::npos);
}

// A test that starts three sleeps which escape its process group and its parentage: one in a
// new session (setsid), one double-forked, one under nohup. Each sleep has a unique duration
// (the marker) so it can be found in /proc. The script waits until all three have started.
std::string escaping_script(const std::string& dir, const std::string& unique) {
  return "setsid sh -c 'echo $$ > " + dir + "/a; exec sleep 123." + unique + "' &\n" +
         "( sh -c 'sleep 124." + unique + " & echo $! > " + dir + "/b' & )\n" +
         "nohup sleep 125." + unique + " > /dev/null 2>&1 &\n" +
         "until [ -s " + dir + "/a ] && [ -s " + dir + "/b ]; do sleep 0.01; done\n";
}

bool escaped_gone(const std::string& unique, std::chrono::milliseconds limit) {
  auto left = [&] {
    std::vector<pid_t> pids;
    for (const char* d : {"123.", "124.", "125."}) {
      for (pid_t p : processes_with(d + unique)) pids.push_back(p);
    }
    return pids;
  };
  if (itest::wait_until([&] { return left().empty(); }, limit)) return true;
  for (pid_t p : left()) ::kill(p, SIGKILL);  // do not leave them to the machine
  return false;
}

class Escapes : public ::testing::TestWithParam<const char*> {};

TEST_P(Escapes, NothingTheTestStartedOutlivesTheJob) {
  const std::string how = GetParam();
  SystemClock clock;
  ProcessExecutor ex(clock, 200, supervisor());
  char tmpl[] = "/tmp/simpleci-escape-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  const std::string unique = std::to_string(::getpid()) + std::to_string(std::hash<std::string>{}(dir) % 100000);
  std::string body = escaping_script(dir, unique);
  if (how == "exit") body += "exit 0\n";
  if (how == "fail") body += "exit 3\n";
  if (how == "cancel" || how == "timeout") body += "touch " + dir + "/ready; sleep 60\n";
  std::string err;
  ASSERT_TRUE(ex.start(shell(9, body, how == "timeout" ? 1 : 30), &err)) << err;
  if (how == "cancel") {
    ASSERT_TRUE(itest::wait_until(
        [&] {
          ex.poll();
          return std::filesystem::exists(dir + "/ready");
        },
        std::chrono::seconds(20)));
    EXPECT_FALSE(processes_with("125." + unique).empty());
    ex.cancel(9);
    EXPECT_TRUE(itest::wait_until(
        [&] {
          ex.poll();
          return ex.running() == 0;
        },
        std::chrono::seconds(20)));
  } else {
    auto done = run_until_done(ex, std::chrono::seconds(30));
    ASSERT_EQ(done.size(), 1u);
    EXPECT_EQ(done[0].status, how == "exit"   ? msg::JobStatus::kPassed
                              : how == "fail" ? msg::JobStatus::kFailed
                                              : msg::JobStatus::kTimeout);
  }
  EXPECT_TRUE(escaped_gone(unique, std::chrono::milliseconds(2000)))
      << "a process started by the test outlived its job (" << how << ")";
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(ProcessExecutor, Escapes, ::testing::Values("exit", "fail", "cancel", "timeout"));

}  // namespace
}  // namespace simpleci::runner
