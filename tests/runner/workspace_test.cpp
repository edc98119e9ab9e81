// libgit2 checkouts against a real repository made with the git command line.
#include <git2.h>

#include <malloc.h>
#include <poll.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>

#include <gtest/gtest.h>

#include "tests/integration/harness.h"
#include "tests/shell.h"

#include "git/git.h"
#include "runner/runner.h"
#include "runner/workspace.h"

namespace simpleci::runner {
namespace {

namespace fs = std::filesystem;

using simpleci::testing::sh;

class WorkspaceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    git_libgit2_init();
    char tmpl[] = "/tmp/simpleci-ws-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    std::string g = "git -c user.name=t -c user.email=t@t -C " + (dir_ / "up").string() + " ";
    fs::create_directories(dir_ / "up");
    sh(g + "init -q -b main");
    std::ofstream(dir_ / "up" / "f") << "one";
    sh(g + "add f && " + g + "commit -q -m one");
    first_ = sh(g + "rev-parse HEAD");
    clone_ = (dir_ / "clone").string();
    sh("git clone -q " + (dir_ / "up").string() + " " + clone_);
    std::ofstream(dir_ / "up" / "f") << "two";
    sh(g + "commit -q -am two");
    second_ = sh(g + "rev-parse HEAD");
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string read(const fs::path& p) {
    std::ifstream in(p);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  fs::path dir_;
  std::string clone_, first_, second_, err_;
};

// libgit2 1.5 leaks a pcre2 match block (about 20 KiB) per config entry in each regex config
// lookup, which git_remote_lookup does; fetching origin must not pay it. The heap in use
// after 200 fetches (on a branch with an upstream, as the observer's clone is, and with the
// url.insteadOf config git users have) stays where it was after the first few.
// (Under AddressSanitizer mallinfo2 reports nothing; LeakSanitizer checks the same instead.)
TEST_F(WorkspaceTest, FetchingOriginAgainAndAgainDoesNotGrowTheHeap) {
  sh("git -C " + clone_ + " config url.file:///nowhere/.insteadOf /never-used/");
  for (int i = 0; i < 10; ++i) sh("git -C " + clone_ + " config simpleci.filler" + std::to_string(i) + " x");
  git::Repo repo = git::open(clone_, &err_);
  ASSERT_TRUE(repo) << err_;
  auto fetch_times = [&](int n) {
    for (int i = 0; i < n; ++i) ASSERT_TRUE(git::fetch_origin(repo.get(), &err_)) << err_;
  };
  fetch_times(10);
  const size_t before = mallinfo2().uordblks;
  fetch_times(200);
  const size_t after = mallinfo2().uordblks;
  EXPECT_LT(after, before + 256 * 1024) << "heap in use grew from " << before << " to " << after
                                        << " bytes over 200 fetches";
  std::string url;
  ASSERT_TRUE(git::origin_url(repo.get(), &url, &err_)) << err_;
  EXPECT_EQ(url, (dir_ / "up").string());
  EXPECT_EQ(sh("git -C " + clone_ + " rev-parse origin/main"), second_);
}

TEST_F(WorkspaceTest, OriginUrlHonoursTheLongestInsteadOf) {
  sh("git -C " + clone_ + " remote set-url origin gh:team/project.git");
  sh("git -C " + clone_ + " config url.https://example.invalid/.insteadOf gh:");
  sh("git -C " + clone_ + " config url." + (dir_ / "up").string() + ".insteadOf gh:team/project.git");
  git::Repo repo = git::open(clone_, &err_);
  std::string url;
  ASSERT_TRUE(git::origin_url(repo.get(), &url, &err_)) << err_;
  EXPECT_EQ(url, (dir_ / "up").string());
  ASSERT_TRUE(git::fetch_origin(repo.get(), &err_)) << err_;
  EXPECT_EQ(sh("git -C " + clone_ + " rev-parse origin/main"), second_);
}

TEST_F(WorkspaceTest, RepoUrlHonoursTheUsersInsteadOf) {
  std::ofstream(dir_ / ".gitconfig") << "[url \"" << (dir_ / "up").string() << "\"]\n\tinsteadOf = short:\n";
  git_buf saved = GIT_BUF_INIT;
  ASSERT_EQ(git_libgit2_opts(GIT_OPT_GET_SEARCH_PATH, GIT_CONFIG_LEVEL_GLOBAL, &saved), 0);
  ASSERT_EQ(git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_GLOBAL, dir_.c_str()), 0);
  EXPECT_EQ(git::with_instead_of("short:"), (dir_ / "up").string());
  EXPECT_EQ(git::with_instead_of("other:x"), "other:x");
  EXPECT_TRUE(open_or_clone((dir_ / "fresh").string(), "short:", &err_)) << err_;
  git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_GLOBAL, saved.ptr);
  git_buf_dispose(&saved);
  EXPECT_EQ(sh("git -C " + (dir_ / "fresh").string() + " rev-parse HEAD"), second_);
}

TEST_F(WorkspaceTest, FetchesNewCommitsAndChecksOutExactlyTheCommit) {
  GitWorkspace ws(clone_);
  std::string workdir;
  ASSERT_EQ(ws.prepare(0, second_, "", &workdir, &err_), Prepared::kReady) << err_;  // needs a fetch first
  EXPECT_EQ(workdir, clone_);
  EXPECT_EQ(read(fs::path(clone_) / "f"), "two");
  std::ofstream(fs::path(clone_) / "f") << "local edit";
  std::ofstream(fs::path(clone_) / "untracked") << "junk";
  ASSERT_EQ(ws.prepare(0, first_, "", &workdir, &err_), Prepared::kReady) << err_;
  EXPECT_EQ(read(fs::path(clone_) / "f"), "one");
  EXPECT_FALSE(fs::exists(fs::path(clone_) / "untracked"));
}

// A job names its branch: the fetch asks for that branch alone (origin's other branches are not
// fetched), and falls back to every branch when the commit is not on the one named.
TEST_F(WorkspaceTest, FetchesTheJobsBranchFirstAndEverythingWhenThatIsNotEnough) {
  std::string g = "git -c user.name=t -c user.email=t@t -C " + (dir_ / "up").string() + " ";
  sh(g + "checkout -q -b side && echo s > " + (dir_ / "up" / "s").string() + " && " + g + "add s && " + g +
     "commit -q -m side");
  const std::string side = sh(g + "rev-parse HEAD");
  sh(g + "checkout -q main");
  std::ofstream(dir_ / "up" / "f") << "three";
  sh(g + "commit -q -am three");
  const std::string third = sh(g + "rev-parse HEAD");
  GitWorkspace ws(clone_);
  std::string workdir;
  ASSERT_EQ(ws.prepare(0, side, "side", &workdir, &err_), Prepared::kReady) << err_;
  EXPECT_EQ(sh("git -C " + clone_ + " rev-parse origin/side"), side);
  EXPECT_EQ(sh("git -C " + clone_ + " rev-parse origin/main"), first_) << "main was fetched too";
  // A branch origin does not have still gets the commit. (libgit2's local transport copies
  // whatever origin has that the clone lacks, whatever the refspec: over a network transport
  // only the branch's objects come, and the fallback fetches the rest.)
  ASSERT_EQ(ws.prepare(0, third, "gone", &workdir, &err_), Prepared::kReady) << err_;
  EXPECT_EQ(read(fs::path(clone_) / "f"), "three");
}

// The slot's repository stays open between jobs: commits pushed later are fetched through it,
// and the packs piling up are merged (the handle closed for that, opened again after).
TEST_F(WorkspaceTest, AKeptOpenRepositorySeesLaterPushes) {
  std::string g = "git -c user.name=t -c user.email=t@t -C " + (dir_ / "up").string() + " ";
  GitWorkspace ws(clone_);
  std::string workdir;
  for (int i = 0; i < static_cast<int>(git::kPackLimit) + 5; ++i) {
    std::ofstream(dir_ / "up" / "f") << "v" << i;
    sh(g + "commit -q -am v" + std::to_string(i));
    const std::string commit = sh(g + "rev-parse HEAD");
    ASSERT_EQ(ws.prepare(0, commit, "main", &workdir, &err_), Prepared::kReady) << err_ << " at " << i;
    ASSERT_EQ(read(fs::path(clone_) / "f"), "v" + std::to_string(i));
  }
  size_t packs = 0;
  for (const auto& e : fs::directory_iterator(fs::path(clone_) / ".git" / "objects" / "pack")) {
    packs += e.path().extension() == ".pack";
  }
  EXPECT_LE(packs, git::kPackLimit + 1);
}

TEST_F(WorkspaceTest, ExtraSlotsGetTheirOwnClone) {
  GitWorkspace ws(clone_);
  std::string workdir;
  ASSERT_EQ(ws.prepare(2, second_, "", &workdir, &err_), Prepared::kReady) << err_;
  EXPECT_EQ(workdir, (fs::path(clone_) / ".git" / "simpleci" / "slots" / "2").string());
  EXPECT_EQ(read(fs::path(workdir) / "f"), "two");
}

TEST_F(WorkspaceTest, UnknownCommitIsAnError) {
  GitWorkspace ws(clone_);
  std::string workdir;
  EXPECT_EQ(ws.prepare(0, std::string(40, 'e'), "main", &workdir, &err_), Prepared::kMissingCommit);
  EXPECT_NE(err_.find("not in origin"), std::string::npos) << err_;
}

TEST_F(WorkspaceTest, StaleLocksFromAKilledRunAreCleared) {
  // What a runner killed during a checkout or fetch leaves behind.
  std::ofstream(fs::path(clone_) / ".git" / "index.lock") << "";
  fs::create_directories(fs::path(clone_) / ".git" / "refs" / "remotes" / "origin");
  std::ofstream(fs::path(clone_) / ".git" / "refs" / "remotes" / "origin" / "main.lock") << "";
  GitWorkspace ws(clone_);
  std::string workdir;
  EXPECT_EQ(ws.prepare(0, second_, "", &workdir, &err_), Prepared::kFailed);
  EXPECT_EQ(git::remove_stale_locks(clone_), 2);
  EXPECT_EQ(ws.prepare(0, second_, "", &workdir, &err_), Prepared::kReady) << err_;
}

TEST_F(WorkspaceTest, OpenOrCloneChecksTheFolder) {
  EXPECT_TRUE(open_or_clone(clone_, "", &err_)) << err_;
  EXPECT_FALSE(open_or_clone((dir_ / "missing").string(), "", &err_));
  EXPECT_NE(err_.find("does not exist"), std::string::npos);
  fs::create_directories(dir_ / "plain");
  EXPECT_FALSE(open_or_clone((dir_ / "plain").string(), "", &err_));
  EXPECT_NE(err_.find("not a git repository"), std::string::npos);
  EXPECT_TRUE(open_or_clone((dir_ / "fresh").string(), (dir_ / "up").string(), &err_)) << err_;
  EXPECT_TRUE(fs::exists(dir_ / "fresh" / "f"));
}

// --- --cache: one clone per named repository, made on first use (docs/MULTI.md) ---

class CacheTest : public WorkspaceTest {
 protected:
  void SetUp() override {
    WorkspaceTest::SetUp();
    cache_ = dir_ / "cache";
    fs::create_directories(cache_);
    // A second repository, with a named job.
    std::string g = "git -c user.name=t -c user.email=t@t -C " + (dir_ / "up2").string() + " ";
    fs::create_directories(dir_ / "up2" / ".simpleci" / "jobs");
    sh(g + "init -q -b trunk");
    std::ofstream(dir_ / "up2" / "lib") << "lib";
    std::ofstream(dir_ / "up2" / ".simpleci" / "jobs" / "check")
        << "#!/bin/sh\necho checked $SIMPLECI_REPO $SIMPLECI_JOB_NAME; cat lib\n";
    fs::permissions(dir_ / "up2" / ".simpleci" / "jobs" / "check", fs::perms::owner_all);
    sh(g + "add -A && " + g + "commit -q -m lib");
    lib_ = sh(g + "rev-parse HEAD");
  }
  Checkout app(const std::string& commit, const std::string& url = "") {
    return Checkout{"app", url.empty() ? (dir_ / "up").string() : url, commit, "main"};
  }
  std::string origin_of(const fs::path& repo) { return sh("git -C " + repo.string() + " config remote.origin.url"); }
  fs::path cache_;
  std::string lib_;
};

TEST_F(CacheTest, EachRepositoryGetsItsOwnCloneOnFirstUse) {
  RepoWorkspaces ws("", cache_.string());
  std::string workdir;
  ASSERT_EQ(ws.prepare(0, app(second_), &workdir, &err_), Prepared::kReady) << err_;
  EXPECT_EQ(workdir, (cache_ / "app").string());
  EXPECT_EQ(read(cache_ / "app" / "f"), "two");
  EXPECT_EQ(origin_of(cache_ / "app"), (dir_ / "up").string());
  ASSERT_EQ(ws.prepare(0, app(first_), &workdir, &err_), Prepared::kReady) << err_;  // no fetch needed
  EXPECT_EQ(read(cache_ / "app" / "f"), "one");
  ASSERT_EQ(ws.prepare(1, Checkout{"lib", (dir_ / "up2").string(), lib_, "trunk"}, &workdir, &err_), Prepared::kReady)
      << err_;
  EXPECT_EQ(workdir, (cache_ / "lib" / ".git" / "simpleci" / "slots" / "1").string());
  EXPECT_EQ(read(fs::path(workdir) / "lib"), "lib");
  EXPECT_EQ(origin_of(workdir), (dir_ / "up2").string());
  EXPECT_TRUE(fs::exists(cache_ / "lib" / ".git")) << "the slot's repository has no clone above it";
  std::set<std::string> left;
  for (const auto& e : fs::directory_iterator(cache_)) left.insert(e.path().filename().string());
  EXPECT_EQ(left, (std::set<std::string>{"app", "lib"})) << "a half-made folder was left";
}

// An existing clone whose origin says another URL than the one in force is pointed at the new
// one (its slots too) and fetches from there.
TEST_F(CacheTest, ANewUrlRepointsTheClone) {
  {
    RepoWorkspaces ws("", cache_.string());
    std::string workdir;
    ASSERT_EQ(ws.prepare(0, app(first_), &workdir, &err_), Prepared::kReady) << err_;
    ASSERT_EQ(ws.prepare(1, app(first_), &workdir, &err_), Prepared::kReady) << err_;
  }
  const fs::path mirror = dir_ / "mirror";
  sh("git clone -q --bare " + (dir_ / "up").string() + " " + mirror.string());
  RepoWorkspaces ws("", cache_.string());
  std::string workdir;
  ASSERT_EQ(ws.prepare(1, app(second_, mirror.string()), &workdir, &err_), Prepared::kReady) << err_;
  EXPECT_EQ(read(fs::path(workdir) / "f"), "two");
  EXPECT_EQ(origin_of(workdir), mirror.string());
  ASSERT_EQ(ws.prepare(0, app(second_, mirror.string()), &workdir, &err_), Prepared::kReady) << err_;
  EXPECT_EQ(origin_of(cache_ / "app"), mirror.string());
}

TEST_F(CacheTest, WhatIsNotServedOrNotAClone) {
  std::string workdir;
  RepoWorkspaces only_clone(clone_, "");
  EXPECT_EQ(only_clone.prepare(0, app(second_), &workdir, &err_), Prepared::kFailed);
  EXPECT_EQ(err_, "this runner does not serve repository app (it was started without --cache DIR)");
  RepoWorkspaces only_cache("", cache_.string());
  EXPECT_EQ(only_cache.prepare(0, Checkout{"", "", second_, "main"}, &workdir, &err_), Prepared::kFailed);
  EXPECT_EQ(err_, "this runner does not serve the unnamed repository (it was started without CLONE_DIR)");
  fs::create_directories(cache_ / "junk");
  EXPECT_EQ(only_cache.prepare(0, Checkout{"junk", (dir_ / "up").string(), second_, ""}, &workdir, &err_),
            Prepared::kFailed);
  EXPECT_NE(err_.find("not a git repository"), std::string::npos) << err_;
  ASSERT_EQ(only_cache.prepare(0, Checkout{"bad", (dir_ / "nowhere").string(), second_, ""}, &workdir, &err_),
            Prepared::kFailed);
  EXPECT_NE(err_.find("nowhere"), std::string::npos) << err_;
}

class RecordingLink : public net::Link {
 public:
  bool send(const msg::Message& m) override {
    sent.push_back(m);
    return true;
  }
  void reconnect() override {}
  std::vector<msg::Message> sent;
};

// The whole way, with real git and a real process: a JOB naming a repository and a job is
// checked out in the cache's clone of it and runs .simpleci/jobs/NAME there.
TEST_F(CacheTest, ANamedJobOfANamedRepositoryRuns) {
  SystemClock clock;
  RecordingLink link;
  ProcessExecutor exec(clock, 1000, itest::bin("simpleci-supervise"));
  RepoWorkspaces ws("", cache_.string());
  Options opt{"r1", 1, cache_ / ".simpleci"};
  opt.serves_unnamed = false;
  opt.serves_all = true;
  opt.repo_urls = {{"lib", (dir_ / "up2").string()}};
  Runner r(clock, link, exec, ws, opt);
  ASSERT_TRUE(r.start(&err_)) << err_;
  r.on_frames(msg::header_frame(), msg::encode(msg::Welcome{1000}));
  msg::Job job{1, 1, lib_, "trunk", "false", 60, 4096};
  job.repo = "lib";
  job.job_name = "check";
  r.on_frames(msg::header_frame(), msg::encode(job));
  r.wait_checkouts();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  std::optional<msg::Result> result;
  while (!result && std::chrono::steady_clock::now() < deadline) {
    r.tick();
    for (const auto& m : link.sent) {
      if (const auto* res = std::get_if<msg::Result>(&m)) result = *res;
    }
    ::poll(nullptr, 0, 5);
  }
  ASSERT_TRUE(result) << "no result in 30 s";
  EXPECT_EQ(result->status, msg::JobStatus::kPassed) << result->output;
  EXPECT_EQ(result->output, "checked lib check\nlib");
  EXPECT_TRUE(fs::exists(cache_ / "lib" / ".simpleci" / "jobs" / "check"));
}

}  // namespace
}  // namespace simpleci::runner
