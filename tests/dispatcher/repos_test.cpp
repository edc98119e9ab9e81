// Repositories, labels, waiting reasons, fair turns and per-repository limits (docs/MULTI.md,
// issue 11), driven with the FakeClock fixture: real store, no sockets, no sleeping.
#include <fstream>

#include <nlohmann/json.hpp>

#include "tests/dispatcher/fixture.h"

namespace simpleci::dispatcher {
namespace {

using msg::JobStatus;

class ReposTest : public DispatcherTest {
 protected:
  void SetUp() override {
    cfg_.repos = {msg::RepoInfo{"alpha", "https://git.example/alpha.git", 0},
                  msg::RepoInfo{"beta", "https://git.example/beta.git", 0}};
    DispatcherTest::SetUp();
  }
  // A runner with labels that serves every declared repository (and the unnamed one).
  void add_labelled(const std::string& name, std::vector<std::string> labels, uint32_t capacity = 1,
                    bool serves_all = true, bool serves_unnamed = true) {
    msg::Register r{name, capacity, {}};
    r.labels = std::move(labels);
    r.serves_unnamed = serves_unnamed;
    r.serves_all = serves_all;
    deliver(name, r);
    welcomes_[name] = out_.take<msg::Welcome>(name);
    ASSERT_EQ(welcomes_[name].size(), 1u);
  }
  msg::Accepted commit(const std::string& repo, int n, std::vector<msg::JobSpec> jobs = {}) {
    msg::Commit c{static_cast<uint64_t>(n), commit_id(n), "main", false};
    c.repo = repo;
    c.jobs = std::move(jobs);
    deliver("obs", c);
    auto acc = out_.take<msg::Accepted>("obs");
    EXPECT_EQ(acc.size(), 1u);
    return acc.empty() ? msg::Accepted{} : acc[0];
  }
  msg::StatusReply status(bool by_repo = false, const std::string& repo = {}) {
    msg::StatusRequest q{77, by_repo, repo};
    deliver("cli", q);
    auto reps = out_.take<msg::StatusReply>("cli");
    EXPECT_EQ(reps.size(), 1u);
    return reps.empty() ? msg::StatusReply{} : reps[0];
  }
  std::map<std::string, std::vector<msg::Welcome>> welcomes_;
};

msg::JobSpec spec(const std::string& name, std::vector<std::string> labels = {}, uint32_t timeout = 0) {
  return msg::JobSpec{name, std::move(labels), timeout, ""};
}

TEST_F(ReposTest, AJobGoesOnlyToARunnerWithAllItsLabels) {
  add_labelled("plain", {"linux"});
  add_labelled("arm", {"linux", "arm64"});
  commit("alpha", 1, {spec("build", {"arm64", "linux"})});
  EXPECT_TRUE(out_.take<msg::Job>("plain").empty());
  auto jobs = out_.take<msg::Job>("arm");
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].repo, "alpha");
  EXPECT_EQ(jobs[0].job_name, "build");
  EXPECT_EQ(jobs[0].url, "") << "no URL over a connection that is not CURVE";
}

TEST_F(ReposTest, AGpuJobWaitsWithItsReasonAndStartsWhenAGpuRunnerRegisters) {
  add_labelled("cpu", {"linux"});
  const uint64_t id = commit("alpha", 1, {spec("train", {"gpu"})}).job_id;
  ASSERT_TRUE(out_.take<msg::Job>("cpu").empty());
  msg::StatusReply s = status();
  ASSERT_EQ(s.queued.size(), 1u);
  EXPECT_EQ(s.queued[0].job_id, id);
  EXPECT_EQ(s.queued[0].waiting, "waiting: no runner with labels gpu");
  EXPECT_EQ(s.queued[0].job_name, "train");
  EXPECT_EQ(s.queued[0].labels, std::vector<std::string>{"gpu"});

  add_labelled("gpu-box", {"linux", "gpu"});  // registration is a dispatch point
  auto jobs = out_.take<msg::Job>("gpu-box");
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].job_id, id);
  EXPECT_TRUE(status().queued.empty());
}

TEST_F(ReposTest, ANamedRepositoryWaitsForARunnerThatServesIt) {
  add_labelled("clone-only", {}, 1, /*serves_all=*/false);
  commit("beta", 1);
  EXPECT_TRUE(out_.take<msg::Job>("clone-only").empty());
  EXPECT_EQ(status().queued.at(0).waiting, "waiting: no runner serves repository beta");
  // The unnamed repository (the original flow) still goes to it.
  deliver("obs", msg::Commit{2, commit_id(2), "main", false});
  EXPECT_EQ(out_.take<msg::Job>("clone-only").size(), 1u);
}

TEST_F(ReposTest, ACommitOfAnUndeclaredRepositoryIsRefusedWithTheReason) {
  msg::Commit c{5, commit_id(1), "main", false};
  c.repo = "gamma";
  deliver("obs", c);
  auto errs = out_.take<msg::Error>("obs");
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0].code, msg::ErrorCode::kBadRequest);
  EXPECT_NE(errs[0].text.find("repository gamma is not declared"), std::string::npos) << errs[0].text;
  EXPECT_EQ(d_->queue_length(), 0u);
}

TEST_F(ReposTest, ACommitWithThreeJobsGetsThreeJobsAndResultFilesOfItsOwn) {
  add_labelled("r", {}, 3);
  const msg::Accepted acc = commit("alpha", 1, {spec("lint"), spec("unit", {}, 30), spec("docs")});
  auto jobs = out_.take<msg::Job>("r");
  ASSERT_EQ(jobs.size(), 3u);
  EXPECT_EQ(jobs[0].job_id, acc.job_id);
  std::set<std::string> names;
  for (const auto& j : jobs) names.insert(j.job_name);
  EXPECT_EQ(names, (std::set<std::string>{"lint", "unit", "docs"}));
  for (const auto& j : jobs) {
    EXPECT_EQ(j.timeout_s, j.job_name == "unit" ? 30u : cfg_.job_timeout_s) << j.job_name;
  }
  // Resent, the commit is a duplicate of its first job.
  EXPECT_TRUE(commit("alpha", 1, {spec("lint")}).duplicate);
  for (const auto& j : jobs) deliver("r", result_for(j));
  for (const std::string job : {"lint", "unit", "docs"}) {
    const auto path = cfg_.results_dir / "alpha" / commit_id(1) / (job + ".json");
    std::ifstream in(path);
    ASSERT_TRUE(in.good()) << path;
    auto j = nlohmann::json::parse(in);
    EXPECT_EQ(j["status"], "passed");
  }
}

TEST_F(ReposTest, ABadSettingsLineIsAnErrorResultThatSaysWhy) {
  add_labelled("r", {}, 2);
  msg::JobSpec bad = spec("build");
  bad.problem = ".simpleci/jobs/build line 2: unknown setting 'gpu=1'";
  commit("alpha", 1, {bad, spec("test")});
  auto jobs = out_.take<msg::Job>("r");
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].job_name, "test");
  std::ifstream out(cfg_.results_dir / "alpha" / commit_id(1) / "build");
  std::string text((std::istreambuf_iterator<char>(out)), {});
  EXPECT_EQ(text, bad.problem + "\n");
}

TEST_F(ReposTest, RepositoriesTakeTurnsSoABurstOnOneDelaysAnotherByOneSlotAtMost) {
  for (int n = 1; n <= 1000; ++n) commit("alpha", n);
  const uint64_t b = commit("beta", 5000).job_id;
  add_labelled("r", {});
  // The runner's first job is alpha's oldest; its next slot goes to beta.
  auto first = out_.take<msg::Job>("r");
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].repo, "alpha");
  deliver("r", result_for(first[0]));
  auto second = out_.take<msg::Job>("r");
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].job_id, b);
  EXPECT_EQ(second[0].repo, "beta");
}

TEST_F(ReposTest, ARepositoryLimitCapsItsRunningJobsAndLetsOthersGo) {
  cfg_.repos[0].limit = 1;
  open();
  add_labelled("big", {}, 4);
  for (int n = 1; n <= 3; ++n) commit("alpha", n);
  commit("beta", 10);
  auto jobs = out_.take<msg::Job>("big");
  ASSERT_EQ(jobs.size(), 2u);
  std::map<std::string, int> per_repo;
  for (const auto& j : jobs) ++per_repo[j.repo];
  EXPECT_EQ(per_repo["alpha"], 1);
  EXPECT_EQ(per_repo["beta"], 1);
  for (const auto& j : jobs) {
    if (j.repo == "alpha") deliver("big", result_for(j));
  }
  auto next = out_.take<msg::Job>("big");
  ASSERT_EQ(next.size(), 1u) << "alpha's next job starts when its running one ends";
  EXPECT_EQ(next[0].repo, "alpha");
}

TEST_F(ReposTest, WelcomeNamesTheRepositoriesWithoutUrlsUnlessAuthenticated) {
  add_labelled("r", {});
  ASSERT_EQ(welcomes_["r"].size(), 1u);
  const auto& repos = welcomes_["r"][0].repos;
  ASSERT_EQ(repos.size(), 2u);
  EXPECT_EQ(repos[0].name, "alpha");
  EXPECT_EQ(repos[0].url, "");
  cfg_.send_urls = true;
  open();
  add_labelled("r2", {});
  EXPECT_EQ(welcomes_["r2"][0].repos.at(1).url, "https://git.example/beta.git");
  commit("beta", 1);
  EXPECT_EQ(out_.take<msg::Job>("r2").at(0).url, "https://git.example/beta.git");
  deliver("obs2", msg::ObserverHello{true});
  auto r = out_.take<msg::Repos>("obs2");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].repos.size(), 2u);
  deliver("obs3", msg::ObserverHello{false});
  EXPECT_TRUE(out_.take<msg::Repos>("obs3").empty()) << "an observer of one clone gets no REPOS";
}

TEST_F(ReposTest, JobsOfARepositoryNoLongerDeclaredEndAsErrorAtStart) {
  const uint64_t id = commit("beta", 1).job_id;
  cfg_.repos.pop_back();  // beta is gone
  open();
  EXPECT_EQ(d_->queue_length(), 0u);
  flush();
  JobRow row;
  std::string err;
  ASSERT_EQ(store_->job(id, &row, &err), Lookup::kFound) << err;
  EXPECT_EQ(row.summary.status, JobStatus::kError);
}

TEST_F(ReposTest, StatusFiltersByRepository) {
  commit("alpha", 1);
  commit("beta", 2);
  deliver("obs", msg::Commit{3, commit_id(3), "main", false});
  EXPECT_EQ(status().queued.size(), 3u);
  auto b = status(true, "beta").queued;
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].repo, "beta");
  auto unnamed = status(true, "").queued;
  ASSERT_EQ(unnamed.size(), 1u);
  EXPECT_EQ(unnamed[0].repo, "");
}

TEST(RepoFlags, ParsesNamesUrlsAndLimitsAndRefusesWhatIsWrong) {
  std::vector<msg::RepoInfo> out;
  std::string err;
  ASSERT_TRUE(parse_repo_flags({"a=https://h/a.git", "b=/srv/b"}, {"b=2"}, &out, &err)) << err;
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].url, "/srv/b");
  EXPECT_EQ(out[1].limit, 2u);
  EXPECT_FALSE(parse_repo_flags({"../x=u"}, {}, &out, &err));
  EXPECT_NE(err.find("NAME must be"), std::string::npos) << err;
  EXPECT_FALSE(parse_repo_flags({"a"}, {}, &out, &err));
  EXPECT_NE(err.find("URL"), std::string::npos) << err;
  EXPECT_FALSE(parse_repo_flags({"a=u", "a=v"}, {}, &out, &err));
  EXPECT_NE(err.find("twice"), std::string::npos) << err;
  EXPECT_FALSE(parse_repo_flags({"a=u"}, {"c=1"}, &out, &err));
  EXPECT_NE(err.find("no repository c"), std::string::npos) << err;
  EXPECT_FALSE(parse_repo_flags({"a=u"}, {"a=0"}, &out, &err));
  EXPECT_FALSE(parse_repo_flags({"a=u"}, {"a=x"}, &out, &err));
  EXPECT_FALSE(parse_repo_flags({"a=u\x01"}, {}, &out, &err));
}

}  // namespace
}  // namespace simpleci::dispatcher
