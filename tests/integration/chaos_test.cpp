// Chaos: 200 commits through one observer, the dispatcher and three runners while runners are
// killed with SIGKILL every few seconds (and restarted), the dispatcher is killed and restarted
// twice and the observer once. Afterwards every commit has exactly one job with one final result,
// the result files agree with the store, and no test process is left running.
#include <signal.h>

#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "tests/integration/cluster.h"

namespace simpleci::itest {
namespace {

using namespace std::chrono_literals;

TEST(Chaos, TwoHundredCommitsSurviveKilledRunnersDispatcherAndObserver) {
  constexpr int kCommits = 200;
  Cluster c(200);
  ASSERT_TRUE(c.start_dispatcher()) << c.logs();
  const std::string endpoint = c.endpoint();
  const std::vector<std::string> names = {"r1", "r2", "r3"};
  for (const auto& n : names) c.start_runner(n);
  c.start_observer(100);
  const std::string tip = c.upstream().git({"rev-parse", "HEAD"}).substr(0, 40);
  ASSERT_TRUE(c.wait_result(tip)) << c.logs();

  // Each test runs a short sleep whose command line carries a marker, to find leftovers.
  const std::string marker = "chaos-" + c.root().filename().string();
  std::mt19937 rng(7);
  int runner_kills = 0, dispatcher_kills = 0, observer_kills = 0;
  std::vector<std::string> ids;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kCommits; ++i) {
    std::string test = "sh -c 'sleep 0." + std::to_string(rng() % 3 + 1) + "; true' " + marker;
    ids.push_back(c.upstream().commit({{".simpleci/test", script(0, test)}, {"n", std::to_string(i)}},
                                      "chaos " + std::to_string(i)));
    if (i % 15 == 14) {  // a random runner dies and comes back
      const std::string& n = names[rng() % names.size()];
      c.runner(n).signal(SIGKILL);
      wait_until([&] { return !c.runner(n).running(); }, 5s);
      c.forget_runner(n);
      c.start_runner(n);
      ++runner_kills;
    }
    if (i == 60 || i == 140) {
      c.dispatcher().signal(SIGKILL);
      wait_until([&] { return !c.dispatcher().running(); }, 5s);
      ASSERT_TRUE(c.start_dispatcher(endpoint)) << c.logs();
      ++dispatcher_kills;
    }
    if (i == 100) {
      c.observer().signal(SIGKILL);
      wait_until([&] { return !c.observer().running(); }, 5s);
      c.start_observer(100);
      ++observer_kills;
    }
    std::this_thread::sleep_for(50ms);  // pacing, so the faults land among running work
  }

  for (const auto& id : ids) {
    ASSERT_TRUE(c.wait_result(id, 240s)) << "no result for " << id << "\n" << c.logs();
  }
  auto elapsed = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - start);

  int passed = 0;
  for (const auto& id : ids) {
    auto jobs = query_results(endpoint, id);
    ASSERT_TRUE(jobs) << c.logs();
    ASSERT_EQ(jobs->jobs.size(), 1u) << "commit tested twice or not at all: " << id;
    const auto& job = jobs->jobs[0];
    ASSERT_TRUE(msg::is_final(job.status)) << id;
    auto file = read_result(c.results_dir(), id);
    ASSERT_TRUE(file);
    EXPECT_EQ((*file)["status"], std::string(msg::to_string(job.status))) << id;
    EXPECT_EQ((*file)["attempt"], job.attempt) << id;
    EXPECT_EQ((*file)["job_id"], job.job_id) << id;
    passed += job.status == msg::JobStatus::kPassed;
  }
  auto status = query_status(endpoint);
  ASSERT_TRUE(status);
  // Test processes of killed runners must be gone too (runner's per-job supervisor).
  bool no_orphans = wait_until([&] { return processes_with(marker).empty(); }, 5s);
  std::printf(
      "[ figures  ] commits %d (passed %d), runner kills %d, dispatcher kills %d, observer kills "
      "%d, time %lld ms, requeues %llu, stale results %llu, orphans %zu\n",
      kCommits, passed, runner_kills, dispatcher_kills, observer_kills,
      static_cast<long long>(elapsed.count()),
      static_cast<unsigned long long>(counter(*status, "jobs.requeued")),
      static_cast<unsigned long long>(counter(*status, "results.stale")),
      processes_with(marker).size());
  EXPECT_TRUE(no_orphans) << "test processes left behind";
  EXPECT_EQ(passed, kCommits) << "every commit's test passes; another outcome means the faults leaked into results";
}

}  // namespace
}  // namespace simpleci::itest
