// The settings line parser on its own, and the jobs folder read from real commits (git command
// line in a temporary folder, read back with libgit2).
#include <git2.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "tests/shell.h"

#include "git/git.h"
#include "git/jobs_folder.h"

namespace simpleci::git {
namespace {

namespace fs = std::filesystem;

using simpleci::testing::sh;

constexpr const char* kPath = ".simpleci/jobs/build";

JobSettings parse(const std::string& text) { return parse_job_settings(kPath, text); }

TEST(JobSettings, NoSettingsLineAsksForNothing) {
  const JobSettings s = parse("#!/bin/sh\nmake test\n");
  EXPECT_TRUE(s.labels.empty());
  EXPECT_EQ(s.timeout_s, 0u);
  EXPECT_EQ(s.problem, "");
  EXPECT_EQ(parse("").problem, "");
}

TEST(JobSettings, ReadsLabelsAndTimeout) {
  const JobSettings s = parse("#!/bin/sh\n# simpleci: labels=gpu,arm64 timeout=300\nmake\n");
  EXPECT_EQ(s.labels, (std::vector<std::string>{"gpu", "arm64"}));
  EXPECT_EQ(s.timeout_s, 300u);
  EXPECT_EQ(s.problem, "");
}

TEST(JobSettings, ExtraSpacesAndCrLfAndAnEmptyLineAreFine) {
  const JobSettings s = parse("#!/bin/sh\r\n# simpleci:   timeout=1    labels=x  \r\n");
  EXPECT_EQ(s.labels, std::vector<std::string>{"x"});
  EXPECT_EQ(s.timeout_s, 1u);
  EXPECT_EQ(s.problem, "");
  EXPECT_EQ(parse("# simpleci:\n").problem, "");
}

TEST(JobSettings, OnlyTheFirstTenLinesCount) {
  std::string text;
  for (int i = 0; i < 10; ++i) text += "echo " + std::to_string(i) + "\n";
  EXPECT_TRUE(parse(text + "# simpleci: labels=gpu\n").labels.empty());
  EXPECT_EQ(parse(text + "# simpleci: nonsense\n").problem, "");
  text.erase(text.rfind("echo 9"));
  EXPECT_EQ(parse(text + "# simpleci: labels=gpu\n").labels, std::vector<std::string>{"gpu"});
}

TEST(JobSettings, TheLineMustStartWithThePrefix) {
  EXPECT_EQ(parse("  # simpleci: bad\n#simpleci: bad\necho '# simpleci: bad'\n").problem, "");
}

TEST(JobSettings, AnUnknownKeyNamesFileLineAndSetting) {
  EXPECT_EQ(parse("#!/bin/sh\n# simpleci: gpu=1\n").problem, ".simpleci/jobs/build line 2: unknown setting 'gpu=1'");
  EXPECT_EQ(parse("# simpleci: labels\n").problem, ".simpleci/jobs/build line 1: unknown setting 'labels'");
}

TEST(JobSettings, AProblemLeavesLabelsAndTimeoutEmpty) {
  const JobSettings s = parse("# simpleci: labels=gpu timeout=0\n");
  EXPECT_TRUE(s.labels.empty());
  EXPECT_EQ(s.timeout_s, 0u);
  EXPECT_EQ(s.problem, ".simpleci/jobs/build line 1: timeout: not a number of seconds between 1 and 604800: '0'");
}

TEST(JobSettings, BadTimeouts) {
  for (const char* v : {"", "-1", "604801", "30s", "1e3", " 5", "99999999999999999999999"}) {
    EXPECT_NE(parse(std::string("# simpleci: timeout=") + v + "\n").problem, "") << v;
  }
  EXPECT_EQ(parse("# simpleci: timeout=604800\n").timeout_s, 604800u);
}

TEST(JobSettings, BadLabels) {
  EXPECT_EQ(parse("# simpleci: labels=\n").problem, ".simpleci/jobs/build line 1: labels: no label given");
  EXPECT_EQ(parse("# simpleci: labels=a,,b\n").problem, ".simpleci/jobs/build line 1: labels: not a valid label ''");
  EXPECT_EQ(parse("# simpleci: labels=.hidden\n").problem,
            ".simpleci/jobs/build line 1: labels: not a valid label '.hidden'");
  EXPECT_EQ(parse("# simpleci: labels=a,b,a\n").problem, ".simpleci/jobs/build line 1: labels: 'a' is given twice");
  std::string many = "l0";
  for (int i = 1; i < 17; ++i) many += ",l" + std::to_string(i);
  EXPECT_EQ(parse("# simpleci: labels=" + many + "\n").problem,
            ".simpleci/jobs/build line 1: labels: 17 labels; at most 16");
  many.erase(many.rfind(','));
  EXPECT_EQ(parse("# simpleci: labels=" + many + "\n").labels.size(), 16u);
}

TEST(JobSettings, AKeyTwiceOrASecondLineIsAProblem) {
  EXPECT_EQ(parse("# simpleci: timeout=1 timeout=2\n").problem,
            ".simpleci/jobs/build line 1: setting 'timeout' is given twice");
  EXPECT_EQ(parse("#!/bin/sh\n# simpleci: labels=a\n\n# simpleci: timeout=5\n").problem,
            ".simpleci/jobs/build line 4: a second settings line (the first is line 2)");
}

TEST(JobSettings, ABadValueIsQuotedSafelyAndShort) {
  const std::string p = parse("# simpleci: labels=a\x01" + std::string(100, 'x') + "\n").problem;
  EXPECT_EQ(p.find('\x01'), std::string::npos);
  EXPECT_NE(p.find("'a?xxx"), std::string::npos) << p;
  EXPECT_NE(p.find("...'"), std::string::npos) << p;
  EXPECT_LT(p.size(), 150u);
}

// ---- the folder in real commits ---------------------------------------------------------------

class JobsFolderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    git_libgit2_init();
    char tmpl[] = "/tmp/simpleci-jobs-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    git_ = "git -c user.name=t -c user.email=t@t -C " + dir_.string() + " ";
    sh(git_ + "init -q -b main");
  }
  void TearDown() override {
    repo_.reset();
    fs::remove_all(dir_);
    git_libgit2_shutdown();
  }
  void write(const std::string& rel, const std::string& text, bool exec) {
    const fs::path p = dir_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    fs::permissions(p, exec ? fs::perms::owner_all : fs::perms::owner_read | fs::perms::owner_write);
  }
  JobsFolder read() {
    sh(git_ + "add -A && " + git_ + "commit -q --allow-empty -m c");
    std::string err;
    if (!repo_) repo_ = git::open(dir_.string(), &err);
    git_oid id;
    EXPECT_EQ(git_oid_fromstr(&id, sh(git_ + "rev-parse HEAD").c_str()), 0);
    JobsFolder out;
    EXPECT_TRUE(read_jobs_folder(repo_.get(), id, &out, &err)) << err;
    return out;
  }
  fs::path dir_;
  std::string git_;
  Repo repo_;
};

TEST_F(JobsFolderTest, NoFolderIsNoJobs) {
  write(".simpleci/test", "#!/bin/sh\n", true);
  const JobsFolder f = read();
  EXPECT_TRUE(f.jobs.empty());
  EXPECT_TRUE(f.notes.empty());
}

TEST_F(JobsFolderTest, ExecutablesAreJobsWithTheirSettings) {
  write(".simpleci/jobs/lint", "#!/bin/sh\ntrue\n", true);
  write(".simpleci/jobs/gpu-suite", "#!/bin/sh\n# simpleci: labels=gpu timeout=60\n", true);
  write(".simpleci/jobs/bad", "#!/bin/sh\n# simpleci: gpu=1\n", true);
  const JobsFolder f = read();
  ASSERT_EQ(f.jobs.size(), 3u);
  EXPECT_EQ(f.jobs[0], (msg::JobSpec{"bad", {}, 0, ".simpleci/jobs/bad line 2: unknown setting 'gpu=1'"}));
  EXPECT_EQ(f.jobs[1], (msg::JobSpec{"gpu-suite", {"gpu"}, 60, ""}));
  EXPECT_EQ(f.jobs[2], (msg::JobSpec{"lint", {}, 0, ""}));
  EXPECT_TRUE(f.notes.empty());
}

TEST_F(JobsFolderTest, AnythingElseIsSkippedWithANote) {
  write(".simpleci/jobs/ok", "#!/bin/sh\n", true);
  write(".simpleci/jobs/readme", "not a job\n", false);
  write(".simpleci/jobs/sub/deeper", "#!/bin/sh\n", true);
  write(".simpleci/jobs/bad name", "#!/bin/sh\n", true);
  fs::create_symlink("ok", dir_ / ".simpleci/jobs/link");
  const JobsFolder f = read();
  ASSERT_EQ(f.jobs.size(), 1u);
  EXPECT_EQ(f.jobs[0].name, "ok");
  ASSERT_EQ(f.notes.size(), 4u);
  const std::vector<std::string> want = {
      ".simpleci/jobs/'bad name' is skipped: not a safe name (1-64 of A-Z a-z 0-9 . _ -, not starting with . or -)",
      ".simpleci/jobs/'link' is skipped: a symbolic link",
      ".simpleci/jobs/'readme' is skipped: not executable",
      ".simpleci/jobs/'sub' is skipped: a folder",
  };
  EXPECT_EQ(f.notes, want);
}

TEST_F(JobsFolderTest, AFileNamedJobsIsNotAFolder) {
  write(".simpleci/jobs", "#!/bin/sh\n", true);
  const JobsFolder f = read();
  EXPECT_TRUE(f.jobs.empty());
  EXPECT_EQ(f.notes, std::vector<std::string>{".simpleci/jobs is not a folder; the commit runs as one job"});
}

TEST_F(JobsFolderTest, MoreThanTheLimitKeepsTheFirstWithAProblem) {
  for (int i = 0; i < 33; ++i) write(".simpleci/jobs/j" + std::to_string(100 + i), "# simpleci: labels=x\n", true);
  const JobsFolder f = read();
  ASSERT_EQ(f.jobs.size(), 32u);
  EXPECT_EQ(f.jobs.front().name, "j100");
  EXPECT_EQ(f.jobs.back().name, "j131");
  for (const auto& j : f.jobs) {
    EXPECT_EQ(j.problem, "the commit has 33 jobs in .simpleci/jobs; at most 32");
    EXPECT_TRUE(j.labels.empty());
  }
}

TEST_F(JobsFolderTest, AnUnknownCommitIsAnError) {
  std::string err;
  repo_ = git::open(dir_.string(), &err);
  git_oid id;
  git_oid_fromstr(&id, "0123456789012345678901234567890123456789");
  JobsFolder out;
  EXPECT_FALSE(read_jobs_folder(repo_.get(), id, &out, &err));
  EXPECT_NE(err.find("cannot read commit 0123456789012345678901234567890123456789"), std::string::npos) << err;
}

}  // namespace
}  // namespace simpleci::git
