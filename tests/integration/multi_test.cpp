// Issue 11 end to end: one dispatcher, two named repositories, an observer and runners that
// serve them from their caches, jobs per commit placed by labels. Real processes, real git
// repositories (local folders named by --repo-url, since the bus is not CURVE here); every wait
// is on a condition with a deadline.
#include <gtest/gtest.h>

#include "tests/integration/cluster.h"

namespace simpleci::itest {
namespace {

using namespace std::chrono_literals;

std::optional<nlohmann::json> wait_json(const fs::path& path, milliseconds timeout = 60s) {
  std::optional<nlohmann::json> j;
  wait_until([&] {
    try {
      if (!fs::exists(path)) return false;
      j = nlohmann::json::parse(read_text(path));
      return j->value("status", "") != "queued" && j->value("status", "") != "running";
    } catch (const std::exception&) {
      return false;
    }
  }, timeout);
  return j;
}

const char* kJob = "#!/bin/sh\necho \"job $SIMPLECI_JOB_NAME of $SIMPLECI_REPO\"\n";

TEST(MultiRepo, TwoRepositoriesJobsPerCommitAndAGpuJobThatWaitsForItsRunner) {
  Cluster c;
  GitRepo alpha = GitRepo::init(c.root() / "alpha");
  GitRepo beta = GitRepo::init(c.root() / "beta");
  const std::string a = alpha.commit({{".simpleci/jobs/lint", kJob},
                                      {".simpleci/jobs/unit", kJob},
                                      {".simpleci/jobs/train", std::string("#!/bin/sh\n# simpleci: labels=gpu timeout=120\n") + kJob}},
                                     "three jobs");
  const std::string b = beta.commit({{".simpleci/test", script(0, "echo beta ok")}}, "one job");
  const std::string alpha_url = "alpha=" + alpha.dir().string(), beta_url = "beta=" + beta.dir().string();
  ASSERT_TRUE(c.start_dispatcher("tcp://127.0.0.1:0", {"--repo", alpha_url, "--repo", beta_url})) << c.logs();

  const fs::path logs = c.root() / "multi-logs";
  auto runner = [&](const std::string& name, std::vector<std::string> extra) {
    std::vector<std::string> argv = {bin("simpleci-runner"), "--dispatcher", c.endpoint(), "--name", name,
                                     "--log-dir", logs.string(), "--cache", (c.root() / ("cache-" + name)).string(),
                                     "--repo-url", alpha_url, "--repo-url", beta_url};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return std::make_unique<Process>("runner-" + name, argv, c.root() / (name + ".out"));
  };
  auto cpu = runner("cpu", {"--jobs", "2"});
  Process observer("observer",
                   {bin("simpleci-observer"), "--dispatcher", c.endpoint(), "--poll-ms", "100", "--log-dir",
                    logs.string(), "--cache", (c.root() / "observer-cache").string(), "--repo-url", alpha_url,
                    "--repo-url", beta_url, "--branch", "ma*"},
                   c.root() / "observer.out");
  auto all_logs = [&] { return c.logs() + "\n--- cpu\n" + cpu->log() + "\n--- observer\n" + observer.log(); };

  // beta's commit has no jobs folder: its one result, one level down from the original place.
  auto rb = wait_json(c.results_dir() / "beta" / (b + ".json"));
  ASSERT_TRUE(rb) << all_logs();
  EXPECT_EQ((*rb)["status"], "passed");
  EXPECT_EQ((*rb)["repo"], "beta");
  EXPECT_NE(read_text(c.results_dir() / "beta" / b).find("beta ok"), std::string::npos);

  // alpha's commit has three jobs: two run on the cpu runner, the gpu one waits with its reason.
  for (const std::string job : {"lint", "unit"}) {
    auto r = wait_json(c.results_dir() / "alpha" / a / (job + ".json"));
    ASSERT_TRUE(r) << job << "\n" << all_logs();
    EXPECT_EQ((*r)["status"], "passed") << r->dump();
    EXPECT_EQ((*r)["runner"], "cpu");
    EXPECT_EQ((*r)["job"], job);
    EXPECT_NE(read_text(c.results_dir() / "alpha" / a / job).find("job " + job + " of alpha"), std::string::npos);
  }
  std::optional<msg::StatusReply> s;
  ASSERT_TRUE(wait_until([&] {
    s = query_status(c.endpoint(), 2s);
    return s && s->queued.size() == 1;
  }, 20s)) << all_logs();
  EXPECT_EQ(s->queued[0].job_name, "train");
  EXPECT_EQ(s->queued[0].waiting, "waiting: no runner with labels gpu");
  RunResult status = run({bin("simpleci"), "status", "--dispatcher", c.endpoint()});
  EXPECT_NE(status.output.find("waiting: no runner with labels gpu"), std::string::npos) << status.output;

  // A runner with the gpu label joins: the job starts there.
  auto gpu = runner("gpu", {"--labels", "gpu"});
  auto rt = wait_json(c.results_dir() / "alpha" / a / "train.json");
  ASSERT_TRUE(rt) << all_logs() << "\n--- gpu\n" << gpu->log();
  EXPECT_EQ((*rt)["status"], "passed");
  EXPECT_EQ((*rt)["runner"], "gpu");
  EXPECT_EQ((*rt)["labels"], nlohmann::json::array({"gpu"}));

  // A new commit to beta is picked up too, and the clones live in the caches.
  const std::string b2 = beta.commit({{"file.txt", "2"}}, "second");
  ASSERT_TRUE(wait_json(c.results_dir() / "beta" / (b2 + ".json"))) << all_logs();
  EXPECT_TRUE(fs::exists(c.root() / "cache-cpu" / "alpha" / ".git"));
  EXPECT_TRUE(fs::exists(c.root() / "observer-cache" / "beta" / ".git"));
}

TEST(MultiRepo, AnUndeclaredRepositoryIsRefusedWithOneLine) {
  Cluster c;
  ASSERT_TRUE(c.start_dispatcher()) << c.logs();
  const std::string id = c.upstream().git({"rev-parse", "HEAD"}).substr(0, 40);
  RunResult r = run({bin("simpleci"), "submit", id, "--repo", "nothere", "--dispatcher", c.endpoint()});
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("repository nothere is not declared"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace simpleci::itest
