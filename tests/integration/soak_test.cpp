// Memory over time: the real observer over 2,000 fast polls and the real runner over 300 jobs
// (each fetching a new commit) must keep a flat RSS. These run `simpleci-bench soak` (the full
// 10,000 is the benchmark's default) and judge the growth after the first tenth, when
// allocators and caches have warmed up. Before the libgit2 leak was avoided the observer grew
// by about 35 KiB a poll and the runner by hundreds of KiB a job.
#include <gtest/gtest.h>

#include "tests/integration/harness.h"

namespace simpleci::itest {
namespace {

// Runs `simpleci-bench ARGS...`, prints its human lines and returns its closing JSON line.
nlohmann::json bench(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {bin("simpleci-bench")};
  argv.insert(argv.end(), args.begin(), args.end());
  RunResult r = run(argv, {}, milliseconds(110000));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::string text = r.output;
  while (!text.empty() && text.back() == '\n') text.pop_back();
  std::printf("[ figures  ] %s\n", text.substr(0, text.rfind('\n')).c_str());
  return nlohmann::json::parse(text.substr(text.rfind('\n') + 1), nullptr, false);
}

// Growth allowed from the start sample to the end, in KiB: a few pages of allocator noise and
// log buffers, far below what a per-iteration leak of even 2 KiB would add.
constexpr long kAllowedGrowthKb = 3 * 1024;

TEST(Soak, ObserverMemoryStaysFlatOver2000Polls) {
  nlohmann::json j = bench({"soak", "--component", "observer", "--count", "2000", "--poll-ms", "10"});
  ASSERT_TRUE(j.is_object()) << j.dump();
  long growth = j["observer_rss_end_kb"].get<long>() - j["observer_rss_start_kb"].get<long>();
  EXPECT_LT(growth, kAllowedGrowthKb) << j.dump();
}

TEST(Soak, RunnerMemoryStaysFlatOver300Jobs) {
  nlohmann::json j = bench({"soak", "--component", "runner", "--count", "300"});
  ASSERT_TRUE(j.is_object()) << j.dump();
  long growth = j["runner_rss_end_kb"].get<long>() - j["runner_rss_start_kb"].get<long>();
  EXPECT_LT(growth, kAllowedGrowthKb) << j.dump();
}

// Issue 9: queued jobs are compact. A smoke run of `simpleci-bench queue` (1,000,000 is its
// default): the dispatcher starts on 20,000 queued jobs and reports them all. The bound is loose
// (at 20,000 jobs the store's page cache and allocator noise are a good part of the difference);
// before the compact queue it measured about 550 bytes a job, since then about 165.
TEST(QueueBench, TwentyThousandQueuedJobsCostLittleRss) {
  nlohmann::json j = bench({"queue", "--queued", "20000", "--settle-ms", "500"});
  ASSERT_TRUE(j.is_object()) << j.dump();
  EXPECT_TRUE(j["ok"].get<bool>());
  EXPECT_LT(j["bytes_per_queued_job"].get<double>(), 400.0) << j.dump();
}

}  // namespace
}  // namespace simpleci::itest
