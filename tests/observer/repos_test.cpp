// The observer's issue-11 work against real repositories (git command line): branch patterns,
// branches that appear and go, the jobs folder sent with each COMMIT, and --cache: several
// declared repositories, each with its own clone and cursor, and the rule for their URLs.
#include <git2.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "tests/shell.h"

#include "observer/observer.h"

namespace simpleci::observer {
namespace {

namespace fs = std::filesystem;

using simpleci::testing::sh;

TEST(BranchPatterns, PlainNamesMatchThemselvesAndStarsStopAtSlashes) {
  EXPECT_TRUE(branch_matches({"main"}, "main"));
  EXPECT_FALSE(branch_matches({"main"}, "main2"));
  EXPECT_TRUE(branch_matches({"release/*"}, "release/1.0"));
  EXPECT_FALSE(branch_matches({"release/*"}, "release/1.0/rc"));
  EXPECT_FALSE(branch_matches({"release/*"}, "release"));
  EXPECT_TRUE(branch_matches({"release/*/*"}, "release/1.0/rc"));
  EXPECT_TRUE(branch_matches({"main", "v[0-9]*"}, "v2"));
  EXPECT_FALSE(branch_matches({"main", "v[0-9]*"}, "vx"));
  EXPECT_TRUE(branch_matches({"fix-?"}, "fix-1"));
  EXPECT_FALSE(branch_matches({}, "main"));
}

TEST(BranchPatterns, ValidValues) {
  for (const char* ok : {"main", "release/*", "v[0-9]*", "fix-?", "*"}) EXPECT_TRUE(is_valid_branch_pattern(ok)) << ok;
  for (const char* bad : {"", "a b", "-x", "a..b", "/x", "x/", "a\\*", "x.lock", "a:b"}) {
    EXPECT_FALSE(is_valid_branch_pattern(bad)) << bad;
  }
  EXPECT_TRUE(is_pattern("release/*"));
  EXPECT_FALSE(is_pattern("release/1.0"));
}

class RecordingLink : public Link {
 public:
  bool send(const msg::Message& m) override {
    if (auto* c = std::get_if<msg::Commit>(&m)) sent.push_back(*c);
    if (auto* h = std::get_if<msg::ObserverHello>(&m)) hello = *h;
    return true;
  }
  void reconnect() override {}
  std::vector<msg::Commit> sent;
  std::optional<msg::ObserverHello> hello;
};

// Upstream repositories up-NAME (each with a main branch and one commit) and an observer.
class RepoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    git_libgit2_init();
    char tmpl[] = "/tmp/simpleci-orepo-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  void TearDown() override {
    obs_.reset();
    fs::remove_all(dir_);
    git_libgit2_shutdown();
  }
  fs::path up(const std::string& name) { return dir_ / ("up-" + name); }
  std::string git(const std::string& name, const std::string& args) {
    return sh("git -c user.name=t -c user.email=t@t -C " + up(name).string() + " " + args);
  }
  std::string make_up(const std::string& name) {
    fs::create_directories(up(name));
    git(name, "init -q -b main");
    return commit(name, "first");
  }
  std::string commit(const std::string& name, const std::string& msg) {
    git(name, "commit -q --allow-empty -m " + msg);
    return git(name, "rev-parse HEAD");
  }
  // The one clone of up-a (the unnamed repository), watching branches.
  void make_clone(std::vector<std::string> branches) {
    sh("git clone -q " + up("a").string() + " " + (dir_ / "clone").string());
    Options o;
    o.clone_dir = (dir_ / "clone").string();
    o.branches = std::move(branches);
    o.state_file = (dir_ / "state").string();
    o.poll = Millis(100);
    start(o);
  }
  void make_cache(bool authenticated, std::map<std::string, std::string> urls = {},
                  std::vector<std::string> branches = {}) {
    Options o;
    o.cache_dir = (dir_ / "cache").string();
    fs::create_directories(o.cache_dir);
    o.authenticated = authenticated;
    o.repo_urls = std::move(urls);
    o.branches = std::move(branches);
    o.poll = Millis(100);
    start(o);
  }
  void start(const Options& o) {
    obs_ = std::make_unique<Observer>(clock_, link_, o);
    std::string err;
    ASSERT_TRUE(obs_->load_state(&err)) << err;
  }
  void frames(const msg::Message& m) { obs_->on_frames(msg::header_frame(), msg::encode(m)); }
  void accept_all() {
    for (const auto& c : link_.sent) frames(msg::Accepted{c.request_id, 1, false});
    link_.sent.clear();
  }
  // One poll later: what was sent, as "repo branch commit" (or "branch commit" for "").
  std::vector<std::string> next() {
    clock_.advance(Millis(100));
    obs_->tick();
    std::vector<std::string> out;
    for (const auto& c : link_.sent) out.push_back((c.repo.empty() ? "" : c.repo + " ") + c.branch + " " + c.commit);
    return out;
  }

  fs::path dir_;
  FakeClock clock_;
  RecordingLink link_;
  std::unique_ptr<Observer> obs_;
};

TEST_F(RepoTest, APatternPicksMatchingBranchesOnlyOneLevelDeep) {
  make_up("a");
  git("a", "checkout -q -b release/1.0");
  const std::string r10 = commit("a", "r10");
  git("a", "checkout -q -b release/2.x/rc");
  commit("a", "rc");
  git("a", "checkout -q main");
  make_clone({"release/*"});
  EXPECT_EQ(next(), std::vector<std::string>{"release/1.0 " + r10});
}

TEST_F(RepoTest, ANewMatchingBranchIsTakenAtItsTipAndAGoneOneIsDropped) {
  make_up("a");
  make_clone({"main", "release/*"});
  ASSERT_EQ(next().size(), 1u);
  accept_all();
  EXPECT_TRUE(next().empty());
  git("a", "checkout -q -b release/3");
  commit("a", "one");
  commit("a", "two");
  const std::string tip = commit("a", "three");
  git("a", "checkout -q main");
  EXPECT_EQ(next(), std::vector<std::string>{"release/3 " + tip}) << "its history is not replayed";
  accept_all();
  EXPECT_EQ(obs_->cursors().at("release/3"), tip);
  git("a", "branch -q -D release/3");
  EXPECT_TRUE(next().empty());
  EXPECT_EQ(obs_->cursors().count("release/3"), 0u);
  EXPECT_EQ(obs_->cursors().count("main"), 1u);
  std::ifstream state(dir_ / "state");
  std::string text((std::istreambuf_iterator<char>(state)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text.find("release/3"), std::string::npos) << text;
}

// Origins that are not folders on this machine are listed with one ls-remote style connection.
TEST_F(RepoTest, AskedAsARemoteOriginPatternsAndTheDefaultBranchWorkToo) {
  const std::string main = make_up("a");
  git("a", "checkout -q -b release/1");
  const std::string r1 = commit("a", "r1");
  git("a", "checkout -q main");
  sh("git clone -q " + up("a").string() + " " + (dir_ / "clone").string());
  GitWatch w((dir_ / "clone").string(), false);
  std::string err;
  ASSERT_TRUE(w.update_matching({"release/*"}, &err)) << err;
  EXPECT_FALSE(w.origin_is_local());
  ASSERT_EQ(w.tips().size(), 1u);
  EXPECT_EQ(git::oid_text(&w.tips().at("release/1")), r1);
  ASSERT_TRUE(w.update_matching({}, &err)) << err;
  ASSERT_EQ(w.tips().size(), 1u);
  EXPECT_EQ(git::oid_text(&w.tips().at("main")), main) << "origin's HEAD";
  git("a", "branch -q -D release/1");
  ASSERT_TRUE(w.update_matching({"release/*"}, &err)) << err;
  EXPECT_TRUE(w.tips().empty());
}

TEST_F(RepoTest, AWakeForABranchAPatternMatchesPolls) {
  make_up("a");
  make_clone({"release/*"});
  obs_->tick();
  const uint64_t polls = obs_->polls();
  clock_.advance(Millis(60));
  frames(msg::Wake{{msg::BranchName{"main"}}});
  obs_->tick();
  EXPECT_EQ(obs_->polls(), polls) << "main does not match";
  frames(msg::Wake{{msg::BranchName{"release/7"}}});
  obs_->tick();
  EXPECT_EQ(obs_->polls(), polls + 1);
}

TEST_F(RepoTest, TheJobsFolderGoesWithTheCommit) {
  make_up("a");
  fs::create_directories(up("a") / ".simpleci/jobs");
  std::ofstream(up("a") / ".simpleci/jobs/gpu") << "#!/bin/sh\n# simpleci: labels=gpu timeout=60\n";
  std::ofstream(up("a") / ".simpleci/jobs/lint") << "#!/bin/sh\n";
  std::ofstream(up("a") / ".simpleci/jobs/README") << "not a job\n";
  fs::permissions(up("a") / ".simpleci/jobs/gpu", fs::perms::owner_all);
  fs::permissions(up("a") / ".simpleci/jobs/lint", fs::perms::owner_all);
  git("a", "add -A");
  const std::string with_jobs = commit("a", "jobs");
  make_clone({"main"});
  ASSERT_EQ(next(), std::vector<std::string>{"main " + with_jobs});
  const std::vector<msg::JobSpec> want = {{"gpu", {"gpu"}, 60, ""}, {"lint", {}, 0, ""}};
  EXPECT_EQ(link_.sent[0].jobs, want);
  EXPECT_EQ(link_.sent[0].repo, "");
  accept_all();
  git("a", "rm -q -r .simpleci");
  const std::string without = commit("a", "nojobs");
  ASSERT_EQ(next(), std::vector<std::string>{"main " + without});
  EXPECT_TRUE(link_.sent[0].jobs.empty()) << "no folder: one unnamed job";
}

TEST_F(RepoTest, TheCacheWatchesEveryDeclaredRepositoryInItsOwnClone) {
  const std::string a = make_up("a"), b = make_up("b");
  git("b", "branch dev");
  make_cache(true);
  obs_->tick();
  ASSERT_TRUE(link_.hello.has_value());
  EXPECT_TRUE(link_.hello->serves_all);
  EXPECT_TRUE(next().empty()) << "nothing before REPOS";
  frames(msg::Repos{{{"a", up("a").string(), 0}, {"b", up("b").string(), 0}}});
  EXPECT_EQ(next(), (std::vector<std::string>{"a main " + a, "b main " + b})) << "default branch only";
  EXPECT_EQ(obs_->repos(), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(fs::exists(dir_ / "cache/a/.git"));
  EXPECT_TRUE(fs::exists(dir_ / "cache/b/.git"));
  accept_all();
  EXPECT_EQ(obs_->cursors("a").at("main"), a);
  EXPECT_EQ(obs_->cursors("b").at("main"), b);
  EXPECT_TRUE(fs::exists(dir_ / "cache/a/.git/simpleci/observer-state"));
  const std::string b2 = commit("b", "more");
  EXPECT_EQ(next(), std::vector<std::string>{"b main " + b2});
  accept_all();
  // A restart reads each repository's cursor back: nothing is sent again.
  make_cache(true);
  frames(msg::Repos{{{"a", up("a").string(), 0}, {"b", up("b").string(), 0}}});
  EXPECT_TRUE(next().empty());
  EXPECT_EQ(obs_->cursors("b").at("main"), b2);
}

TEST_F(RepoTest, RepositoriesComeAndGoWithTheNextRepos) {
  const std::string a = make_up("a"), b = make_up("b");
  make_cache(true, {}, {"main"});
  frames(msg::Repos{{{"a", up("a").string(), 0}}});
  EXPECT_EQ(next(), std::vector<std::string>{"a main " + a});
  accept_all();
  frames(msg::Repos{{{"b", up("b").string(), 0}}});  // a dispatcher restarted with other --repo
  EXPECT_EQ(obs_->repos(), std::vector<std::string>{"b"});
  commit("a", "unwatched");
  EXPECT_EQ(next(), std::vector<std::string>{"b main " + b});
}

TEST_F(RepoTest, WithoutCurveOnlyRepoUrlGivesAUrl) {
  const std::string a = make_up("a");
  make_up("b");
  make_cache(false, {{"a", up("a").string()}});
  frames(msg::Repos{{{"a", "", 0}, {"b", up("b").string(), 0}}});
  EXPECT_EQ(next(), std::vector<std::string>{"a main " + a});
  EXPECT_EQ(obs_->repos(), std::vector<std::string>{"a"}) << "b's URL came from an unauthenticated peer";
  EXPECT_FALSE(fs::exists(dir_ / "cache/b"));
}

TEST_F(RepoTest, RepoUrlWinsOverTheDispatchersUrl) {
  const std::string a = make_up("a");
  make_cache(true, {{"a", up("a").string()}});
  frames(msg::Repos{{{"a", (dir_ / "nowhere").string(), 0}}});
  EXPECT_EQ(next(), std::vector<std::string>{"a main " + a});
  EXPECT_EQ(sh("git -C " + (dir_ / "cache/a").string() + " config remote.origin.url"), up("a").string());
}

TEST_F(RepoTest, ANewUrlForARepositoryIsFollowed) {
  const std::string a = make_up("a");
  make_cache(true);
  frames(msg::Repos{{{"a", up("a").string(), 0}}});
  EXPECT_EQ(next(), std::vector<std::string>{"a main " + a});
  accept_all();
  sh("git clone -q --bare " + up("a").string() + " " + (dir_ / "mirror.git").string());
  frames(msg::Repos{{{"a", (dir_ / "mirror.git").string(), 0}}});
  EXPECT_TRUE(next().empty()) << "same commits at the new URL: the cursor is kept";
  EXPECT_EQ(sh("git -C " + (dir_ / "cache/a").string() + " config remote.origin.url"), (dir_ / "mirror.git").string());
}

TEST_F(RepoTest, AnOriginThatCannotBeReadDoesNotStopTheOthers) {
  const std::string a = make_up("a");
  make_cache(true);
  frames(msg::Repos{{{"a", up("a").string(), 0}, {"gone", (dir_ / "nowhere").string(), 0}}});
  EXPECT_EQ(next(), std::vector<std::string>{"a main " + a});
  EXPECT_FALSE(obs_->poll_git());
}

}  // namespace
}  // namespace simpleci::observer
