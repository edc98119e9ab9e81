// The libgit2 helpers against real repositories made with the git command line.
#include <git2.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "tests/shell.h"

#include "git/git.h"

namespace simpleci::git {
namespace {

namespace fs = std::filesystem;

using simpleci::testing::sh;

// An upstream repository and a clone that fetches one new commit at a time, as the runner's and
// the observer's clones do for months: every fetch leaves a pack behind.
class PackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    git_libgit2_init();
    char tmpl[] = "/tmp/simpleci-git-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    fs::create_directories(dir_ / "up");
    up_ = "git -c user.name=t -c user.email=t@t -C " + (dir_ / "up").string() + " ";
    sh(up_ + "init -q -b main && " + up_ + "commit -q --allow-empty -m zero");
    clone_ = (dir_ / "clone").string();
    sh("git clone -q " + (dir_ / "up").string() + " " + clone_);
  }
  void TearDown() override {
    fs::remove_all(dir_);
    git_libgit2_shutdown();
  }
  // One commit upstream with a new file, fetched into the clone with fetch_origin.
  void commit_and_fetch(int n) {
    std::ofstream(dir_ / "up" / ("f" + std::to_string(n))) << "content " << n << "\n";
    sh(up_ + "add -A && " + up_ + "commit -q -m c" + std::to_string(n));
    std::string err;
    Repo r = open(clone_, &err);
    ASSERT_TRUE(r && fetch_origin(r.get(), &err)) << err;
  }
  size_t packs() const {
    size_t n = 0;
    for (const auto& e : fs::directory_iterator(fs::path(clone_) / ".git/objects/pack")) {
      n += e.path().extension() == ".pack";
    }
    return n;
  }

  fs::path dir_;
  std::string up_;  // "git ... -C <upstream> "
  std::string clone_;
};

TEST_F(PackTest, ManyFetchesMergeIntoTwoPacksAndKeepEveryObject) {
  for (int i = 0; i < 12; ++i) commit_and_fetch(i);
  const std::string objects = sh("git -C " + clone_ + " rev-list --objects refs/remotes/origin/main | sort");
  const size_t before = packs();
  ASSERT_GE(before, 12u);

  std::string err;
  EXPECT_EQ(merge_small_packs(clone_, before, &err), 0) << err;  // at the limit: nothing to do
  EXPECT_EQ(packs(), before);
  EXPECT_EQ(merge_small_packs(clone_, 4, &err), static_cast<int>(before - 1)) << err;
  EXPECT_EQ(packs(), 2u);  // the largest, untouched, and the merged one
  EXPECT_EQ(sh("git -C " + clone_ + " rev-list --objects refs/remotes/origin/main | sort"), objects);
  EXPECT_EQ(sh("git -C " + clone_ + " fsck --strict 2>&1 >/dev/null; echo $?"), "0");

  // Later fetches go on working on top of the merged pack.
  commit_and_fetch(100);
  EXPECT_EQ(sh("git -C " + clone_ + " cat-file -t origin/main:f100"), "blob");
}

TEST_F(PackTest, AKeptPackIsLeftAlone) {
  for (int i = 0; i < 6; ++i) commit_and_fetch(i);
  fs::path kept;
  for (const auto& e : fs::directory_iterator(fs::path(clone_) / ".git/objects/pack")) {
    if (e.path().extension() == ".pack") kept = e.path();
  }
  std::ofstream(fs::path(kept).replace_extension(".keep")) << "held\n";
  std::string err;
  ASSERT_GT(merge_small_packs(clone_, 2, &err), 0) << err;
  EXPECT_TRUE(fs::exists(kept));
  EXPECT_EQ(sh("git -C " + clone_ + " fsck --strict 2>&1 >/dev/null; echo $?"), "0");
}

TEST_F(PackTest, ABrokenIndexFailsAndRemovesNothing) {
  for (int i = 0; i < 4; ++i) commit_and_fetch(i);
  size_t smallest = SIZE_MAX;
  fs::path victim;
  for (const auto& e : fs::directory_iterator(fs::path(clone_) / ".git/objects/pack")) {
    if (e.path().extension() == ".pack" && e.file_size() < smallest) {
      smallest = e.file_size();
      victim = e.path();
    }
  }
  fs::resize_file(fs::path(victim).replace_extension(".idx"), 100);
  const size_t before = packs();
  std::string err;
  EXPECT_EQ(merge_small_packs(clone_, 1, &err), -1);
  EXPECT_NE(err.find("pack index"), std::string::npos) << err;
  EXPECT_EQ(packs(), before);
}

// The ref check of the observer's polls: origin's tips read without fetching.
using RefTest = PackTest;

std::string tip_of(git_repository* repo, const std::string& ref) {
  git_oid id;
  return ref_id(repo, ref, &id) ? oid_text(&id) : "";
}

TEST_F(RefTest, ALongOpenRepositorySeesEveryPushLooseOrPacked) {
  std::string err;
  Repo origin = open((dir_ / "up").string(), &err);
  ASSERT_TRUE(origin) << err;
  const std::string head = up_ + "rev-parse HEAD";
  EXPECT_EQ(tip_of(origin.get(), "refs/heads/main"), sh(head));
  sh(up_ + "commit -q --allow-empty -m loose");  // a loose ref file is rewritten
  EXPECT_EQ(tip_of(origin.get(), "refs/heads/main"), sh(head));
  sh(up_ + "pack-refs --all");  // now only in packed-refs, which libgit2 caches
  EXPECT_EQ(tip_of(origin.get(), "refs/heads/main"), sh(head));
  for (int i = 0; i < 3; ++i) {  // packed-refs rewritten under the open handle, at once
    sh(up_ + "commit -q --allow-empty -m packed" + std::to_string(i) + " && " + up_ + "pack-refs --all");
    EXPECT_EQ(tip_of(origin.get(), "refs/heads/main"), sh(head)) << "packed-refs rewrite " << i;
  }
  EXPECT_EQ(tip_of(origin.get(), "refs/heads/gone"), "");
}

TEST_F(RefTest, LsOriginNamesTheWatchedBranchesOriginHas) {
  sh(up_ + "branch dev && " + up_ + "branch other");
  std::string err;
  Repo clone = open(clone_, &err);
  ASSERT_TRUE(clone) << err;
  Tips tips;
  ASSERT_TRUE(ls_origin(clone.get(), {"main", "dev", "gone"}, &tips, &err)) << err;
  ASSERT_EQ(tips.size(), 2u);
  EXPECT_EQ(oid_text(&tips.at("main")), sh(up_ + "rev-parse main"));
  EXPECT_EQ(oid_text(&tips.at("dev")), sh(up_ + "rev-parse dev"));
  // Nothing was fetched: the clone still lacks dev.
  EXPECT_EQ(tip_of(clone.get(), "refs/remotes/origin/dev"), "");
}

TEST_F(RefTest, LsOriginSaysWhenOriginCannotBeReached) {
  sh("git -C " + clone_ + " remote set-url origin " + (dir_ / "nowhere").string());
  std::string err;
  Repo clone = open(clone_, &err);
  Tips tips;
  EXPECT_FALSE(ls_origin(clone.get(), {"main"}, &tips, &err));
  EXPECT_NE(err.find("cannot reach origin"), std::string::npos) << err;
}

TEST(LocalPath, FoldersAndFileUrlsAreLocalTheRestIsNot) {
  EXPECT_EQ(local_path("/srv/git/p.git", "/home/c"), "/srv/git/p.git");
  EXPECT_EQ(local_path("file:///srv/git/p.git", "/home/c"), "/srv/git/p.git");
  EXPECT_EQ(local_path("../up", "/home/c"), "/home/up");
  EXPECT_EQ(local_path("up/./p.git", "/home/c"), "/home/c/up/p.git");
  EXPECT_EQ(local_path("https://git.example.com/p.git", "/home/c"), "");
  EXPECT_EQ(local_path("ssh://git@host/p.git", "/home/c"), "");
  EXPECT_EQ(local_path("git@host:p.git", "/home/c"), "");
  EXPECT_EQ(local_path("host:dir/p.git", "/home/c"), "");
  EXPECT_EQ(local_path("", "/home/c"), "");
}

}  // namespace
}  // namespace simpleci::git
