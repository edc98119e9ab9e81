// Faults inflicted for real: a runner killed or frozen mid-job, its test processes, timeouts,
// cancel and retry, and a dispatcher whose disk is full. Figures are printed, not asserted,
// except where a time separates two mechanisms (a closed connection vs. heartbeat expiry).
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <fstream>

#include <gtest/gtest.h>

#include "tests/integration/cluster.h"

namespace simpleci::itest {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

long long ms_since(SteadyClock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(SteadyClock::now() - t).count();
}

bool runner_listed(const std::string& endpoint, const std::string& name) {
  auto s = query_status(endpoint, 1s);
  if (!s) return true;  // unknown: keep waiting
  for (const auto& r : s->runners) {
    if (r.name == name) return true;
  }
  return false;
}

// Submits a commit whose test records where it runs and then sleeps; returns the commit.
std::string slow_commit(Cluster& c, const fs::path& marks, const std::string& extra = "sleep 3") {
  fs::create_directories(marks);
  std::string body = "basename \"$PWD\" >> " + (marks / "started").string() + "\n" + extra;
  std::string id = c.upstream().commit({{".simpleci/test", script(0, body)}}, "slow");
  RunResult sub = run({bin("simpleci"), "submit", id, "--branch", "main", "--dispatcher", c.endpoint()});
  EXPECT_EQ(sub.exit_code, 0) << sub.output;
  return id;
}

std::string first_runner(const fs::path& marks) {
  std::string who;
  wait_until(
      [&] {
        std::ifstream in(marks / "started");
        return static_cast<bool>(std::getline(in, who)) && !who.empty();
      },
      20s);
  return who;
}

TEST(Faults, KilledRunnerIsNoticedByItsClosedConnectionNotItsHeartbeats) {
  Cluster c(1000);  // heartbeat expiry would take 3 s
  ASSERT_TRUE(c.start_dispatcher()) << c.logs();
  c.start_runner("r1");
  c.start_runner("r2");
  fs::path marks = c.root() / "marks";
  std::string id = slow_commit(c, marks);
  std::string victim = first_runner(marks);
  ASSERT_FALSE(victim.empty()) << c.logs();
  auto t0 = SteadyClock::now();
  c.runner(victim).signal(SIGKILL);
  ASSERT_TRUE(wait_until([&] { return !runner_listed(c.endpoint(), victim); }, 10s)) << c.logs();
  long long detected = ms_since(t0);
  std::printf("[ figures  ] runner killed -> declared dead: %lld ms (heartbeat 1000 ms)\n", detected);
  EXPECT_LT(detected, 2500) << "noticed only by heartbeat expiry, not by the closed connection";
  auto r = c.wait_result(id, 30s);
  ASSERT_TRUE(r) << c.logs();
  EXPECT_EQ((*r)["attempt"], 2);
}

TEST(Faults, FrozenRunnerIsNoticedWithinThreeIntervalsAndItsLateResultIsStale) {
  Cluster c(200);
  ASSERT_TRUE(c.start_dispatcher()) << c.logs();
  c.start_runner("r1");
  c.start_runner("r2");
  fs::path marks = c.root() / "marks";
  std::string id = slow_commit(c, marks, "sleep 1.5");
  std::string victim = first_runner(marks);
  ASSERT_FALSE(victim.empty()) << c.logs();
  auto t0 = SteadyClock::now();
  c.runner(victim).signal(SIGSTOP);
  ASSERT_TRUE(wait_until([&] { return !runner_listed(c.endpoint(), victim); }, 10s)) << c.logs();
  std::printf("[ figures  ] runner frozen (SIGSTOP) -> declared dead: %lld ms (heartbeat 200 ms)\n",
              ms_since(t0));
  auto r = c.wait_result(id, 30s);
  ASSERT_TRUE(r) << c.logs();
  EXPECT_EQ((*r)["attempt"], 2);
  EXPECT_NE((*r)["runner"], victim);
  // Thawed, the runner registers again; whatever it sends for attempt 1 must not win.
  c.runner(victim).signal(SIGCONT);
  ASSERT_TRUE(wait_until([&] { return runner_listed(c.endpoint(), victim); }, 60s)) << c.logs();
  wait_until([&] {
    auto s = query_status(c.endpoint(), 1s);
    return s && counter(*s, "results.stale") > 0;
  }, 5s);
  auto again = read_result(c.results_dir(), id);
  ASSERT_TRUE(again);
  EXPECT_EQ((*again)["attempt"], 2) << again->dump();
}

TEST(Faults, RunnerKilledWithSigkillLeavesNoTestProcessBehind) {
  Cluster c;
  ASSERT_TRUE(c.start_dispatcher()) << c.logs();
  c.start_runner("r1");
  const std::string marker = "orphan-check-" + c.root().filename().string();
  fs::path marks = c.root() / "marks";
  slow_commit(c, marks, "sh -c 'sleep 60; true' " + marker + " & sh -c 'sleep 60; true' " + marker + "\nwait");
  ASSERT_FALSE(first_runner(marks).empty()) << c.logs();
  ASSERT_TRUE(wait_until([&] { return processes_with(marker).size() >= 2; }, 10s));
  auto t0 = SteadyClock::now();
  c.runner("r1").signal(SIGKILL);
  bool gone = wait_until([&] { return processes_with(marker).empty(); }, 10s);
  std::printf("[ figures  ] runner killed -> its test processes gone: %lld ms\n", ms_since(t0));
  EXPECT_TRUE(gone) << processes_with(marker).size() << " test processes left";
}

TEST(Faults, SigtermedRunnerFinishesItsJobReportsAndExits) {
  Cluster c;
  ASSERT_TRUE(c.start_dispatcher()) << c.logs();
  c.start_runner("r1");
  fs::path marks = c.root() / "marks";
  std::string id = slow_commit(c, marks, "sleep 1");
  ASSERT_FALSE(first_runner(marks).empty()) << c.logs();
  int code = c.runner("r1").stop(SIGTERM, 30s);
  EXPECT_EQ(code, 0) << c.logs();
  // The runner leaves once the result is durable in the store; the file follows it.
  std::optional<nlohmann::json> r;
  wait_until([&] { return (r = read_result(c.results_dir(), id)).has_value(); }, 10s);
  ASSERT_TRUE(r) << "the runner exited before its result was stored\n" << c.logs();
  EXPECT_EQ((*r)["status"], "passed");
  EXPECT_EQ((*r)["attempt"], 1);
}

long peak_rss_kb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

TEST(Faults, AGigabyteOfOutputIsCappedAndMemoryStaysFlat) {
  Cluster c;
  ASSERT_TRUE(c.start_dispatcher()) << c.logs();
  c.start_runner("r1");
  // Runs a test printing `bytes` bytes; returns the kept output.
  auto flood = [&](long long bytes) -> std::string {
    std::string id = c.upstream().commit(
        {{".simpleci/test", script(0, "head -c " + std::to_string(bytes) +
                                          " /dev/zero | tr '\\0' y\necho; echo the-very-end")}},
        "flood of " + std::to_string(bytes));
    RunResult sub = run({bin("simpleci"), "submit", id, "--dispatcher", c.endpoint()});
    EXPECT_EQ(sub.exit_code, 0) << sub.output;
    auto r = c.wait_result(id, 120s);
    EXPECT_TRUE(r) << c.logs();
    if (!r) return "";
    EXPECT_EQ((*r)["status"], "passed");
    EXPECT_EQ((*r)["truncated"], true);
    return read_text(c.results_dir() / id);
  };
  // Three floods of 64 MiB (each already 4 times the cap; the allocators settle), then 1 GiB:
  // the peak memory must not grow with it.
  for (int k = 0; k < 3; ++k) flood(64ll << 20);
  const long runner_small = peak_rss_kb(c.runner("r1").pid()), disp_small = peak_rss_kb(c.dispatcher().pid());
  std::string out = flood(1ll << 30);
  EXPECT_LE(out.size(), 16u * 1024 * 1024);
  EXPECT_NE(out.find("the-very-end"), std::string::npos);
  EXPECT_NE(out.find("bytes omitted]"), std::string::npos);
  const long runner_kb = peak_rss_kb(c.runner("r1").pid()), disp_kb = peak_rss_kb(c.dispatcher().pid());
  std::printf("[ figures  ] kept %zu bytes; peak RSS after 3 x 64 MiB / after 1 GiB more output: runner %ld / %ld KiB, "
              "dispatcher %ld / %ld KiB\n", out.size(), runner_small, runner_kb, disp_small, disp_kb);
  // Flat: sixteen times more output moves the peak by less than one output cap.
  EXPECT_LT(runner_kb - runner_small, 16 * 1024);
  EXPECT_LT(disp_kb - disp_small, 16 * 1024);
  EXPECT_LT(runner_kb, 160 * 1024);
  EXPECT_LT(disp_kb, 160 * 1024);
}

TEST(Faults, TimeoutCancelAndRetry) {
  Cluster c;
  ASSERT_TRUE(c.start_dispatcher("tcp://127.0.0.1:0", {"--job-timeout", "1"})) << c.logs();
  c.start_runner("r1");
  fs::path marks = c.root() / "marks";
  std::string id = slow_commit(c, marks, "sleep 30");
  auto r = c.wait_result(id, 30s);
  ASSERT_TRUE(r) << c.logs();
  EXPECT_EQ((*r)["status"], "timeout");
  uint64_t job = (*r)["job_id"];

  // retry queues the commit again as a new job; cancel ends it while it runs.
  RunResult rt = run({bin("simpleci"), "retry", std::to_string(job), "--dispatcher", c.endpoint()});
  ASSERT_EQ(rt.exit_code, 0) << rt.output;
  uint64_t again = std::stoull(rt.output.substr(rt.output.rfind(' ') + 1));
  EXPECT_GT(again, job);
  ASSERT_TRUE(wait_until([&] {
    auto s = query_status(c.endpoint(), 1s);
    return s && !s->running.empty() && s->running[0].job_id == again;
  }, 20s)) << c.logs();
  RunResult cn = run({bin("simpleci"), "cancel", std::to_string(again), "--dispatcher", c.endpoint()});
  ASSERT_EQ(cn.exit_code, 0) << cn.output;
  auto j = c.wait_result(id, 10s);
  ASSERT_TRUE(wait_until([&] {
    j = read_result(c.results_dir(), id);
    return j && (*j)["job_id"] == again;
  }, 10s));
  EXPECT_EQ((*j)["status"], "cancelled");
  RunResult twice = run({bin("simpleci"), "cancel", std::to_string(again), "--dispatcher", c.endpoint()});
  EXPECT_EQ(twice.exit_code, 1);
  EXPECT_NE(twice.output.find("already ended"), std::string::npos) << twice.output;
}

TEST(Faults, RunnerThatCannotFetchIsRoutedAroundAndPaused) {
  Cluster c;
  ASSERT_TRUE(c.start_dispatcher()) << c.logs();
  // "broken" has a clone whose origin has gone away: every fetch fails.
  GitRepo broken = GitRepo::clone(c.upstream().dir(), c.root() / "clones" / "broken");
  broken.git({"remote", "set-url", "origin", (c.root() / "gone").string()});
  c.start_runner("broken");
  c.start_runner("good");
  ASSERT_TRUE(wait_until([&] {
    return runner_listed(c.endpoint(), "broken") && runner_listed(c.endpoint(), "good");
  }, 20s)) << c.logs();
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    ids.push_back(c.upstream().commit({{".simpleci/test", script(0)}, {"n", std::to_string(i)}}, "c" + std::to_string(i)));
    RunResult sub = run({bin("simpleci"), "submit", ids.back(), "--dispatcher", c.endpoint()});
    ASSERT_EQ(sub.exit_code, 0) << sub.output;
  }
  for (const auto& id : ids) {
    auto r = c.wait_result(id, 30s);
    ASSERT_TRUE(r) << c.logs();
    EXPECT_EQ((*r)["status"], "passed") << r->dump();
    EXPECT_EQ((*r)["runner"], "good");
  }
  auto st = query_status(c.endpoint(), 5s);
  ASSERT_TRUE(st);
  EXPECT_GE(counter(*st, "jobs.setup_failed"), 1u) << "the broken runner got none of the work";
  std::printf("[ figures  ] 4 commits, broken runner: %llu setup failures, paused %llu time(s)\n",
              static_cast<unsigned long long>(counter(*st, "jobs.setup_failed")),
              static_cast<unsigned long long>(counter(*st, "runners.paused")));
}

TEST(Faults, FullDiskRefusesToAcceptAndLosesNothing) {
  if (::geteuid() != 0) GTEST_SKIP() << "mounting a small tmpfs needs root";
  TempDir tmp;
  fs::path small = tmp.path() / "small";
  fs::create_directories(small);
  if (::mount("tmpfs", small.c_str(), "tmpfs", 0, "size=2m") != 0) GTEST_SKIP() << "cannot mount tmpfs";
  struct Unmount {
    fs::path p;
    ~Unmount() { ::umount2(p.c_str(), MNT_DETACH); }
  } unmount{small};
  Process d("dispatcher",
            {bin("simpleci-dispatcher"), "--bind", "tcp://127.0.0.1:0", "--state-dir", (small / "state").string(),
             "--results-dir", (tmp.path() / "results").string(), "--log-dir", (tmp.path() / "logs").string()},
            tmp.path() / "d.out");
  std::string ep = wait_for_endpoint(small / "state");
  ASSERT_FALSE(ep.empty()) << d.log();
  auto submit = [&](char c) {
    return run({bin("simpleci"), "submit", std::string(40, c), "--dispatcher", ep});
  };
  ASSERT_EQ(submit('a').exit_code, 0);
  {  // fill the disk
    std::ofstream fill(small / "filler", std::ios::binary);
    std::string block(65536, 'x');
    while (fill.write(block.data(), block.size())) {
    }
  }
  RunResult refused = submit('b');
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  EXPECT_NE(refused.output.find("store"), std::string::npos) << refused.output;
  fs::remove(small / "filler");
  RunResult later = submit('b');
  EXPECT_EQ(later.exit_code, 0) << later.output << d.log();
  EXPECT_TRUE(d.running());
  auto a = query_results(ep, std::string(40, 'a'));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->jobs.size(), 1u) << "the job stored before the disk filled up is gone";
}

}  // namespace
}  // namespace simpleci::itest
