// The client's subcommands against a scripted dispatcher (no socket): what each asks, what it
// prints and its exit code.
#include <gtest/gtest.h>

#include <cstdio>
#include <atomic>
#include <deque>
#include <functional>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "messages/limits.h"
#include "tests/shell.h"
#include "tools/client/commands.h"
#include "tools/client/events.h"
#include "tools/client/watch.h"

namespace simpleci::client {
namespace {

namespace fs = std::filesystem;

const std::string kCommit(40, 'a');

// Answers each ask with the next scripted reply (an ERROR fails as Session does); records asks.
class ScriptedAsker final : public Asker {
 public:
  std::deque<msg::Message> replies;
  std::vector<msg::Message> asked;
  int ask(const msg::Message& req, msg::Message* reply) override {
    asked.push_back(req);
    if (replies.empty()) return 1;
    *reply = replies.front();
    replies.pop_front();
    if (const auto* e = std::get_if<msg::Error>(reply)) return cli::fail(kProgram, error_line(*e), 1);
    return 0;
  }
};

// An in-memory FILE*: what a command printed.
class Captured {
 public:
  Captured() : f_(open_memstream(&buf_, &size_)) {}
  ~Captured() {
    std::fclose(f_);
    std::free(buf_);
  }
  std::FILE* file() { return f_; }
  std::string text() {
    std::fflush(f_);
    return std::string(buf_, size_);
  }

 private:
  char* buf_ = nullptr;
  size_t size_ = 0;
  std::FILE* f_;
};

// A feed that plays a script: each run_for() does the next step to the handler.
class ScriptedFeed final : public FeedSource {
 public:
  std::deque<std::function<void(net::FeedHandler&)>> script;
  std::vector<uint64_t> followed;
  bool all_output = false, step = false, stopped = false;
  int start(std::vector<uint64_t> follow, bool all) override {
    followed = std::move(follow);
    all_output = all;
    return 0;
  }
  void run_for(Millis, net::FeedHandler& h) override {
    if (script.empty()) throw std::runtime_error("the feed's script ran out");
    auto next = std::move(script.front());
    script.pop_front();
    next(h);
  }
  bool in_step() const override { return step; }
  void stop() override { stopped = true; }
};

msg::JobSummary job(uint64_t id, msg::JobStatus status) {
  msg::JobSummary j;
  j.job_id = id;
  j.commit = kCommit;
  j.status = status;
  return j;
}

// A folder that holds no git repository (nor does any folder above it), for submit to run in.
class NoRepoHere {
 public:
  NoRepoHere() : old_(fs::current_path()) {
    char tmpl[] = "/tmp/simpleci-norepo-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    fs::current_path(dir_);
  }
  ~NoRepoHere() {
    fs::current_path(old_);
    fs::remove_all(dir_);
  }

 private:
  fs::path old_, dir_;
};

SubmitArgs submit_args(const std::string& commit, const std::string& branch) {
  SubmitArgs a;
  a.commit = commit;
  a.branch = branch;
  return a;
}

TEST(ClientCommands, SubmitPrintsTheQueuedOrKnownJob) {
  NoRepoHere here;
  ScriptedAsker d;
  Captured out, err;
  d.replies = {msg::Accepted{1, 7, false}, msg::Accepted{1, 7, true}};
  EXPECT_EQ(submit(d, submit_args(std::string(40, 'A'), "main"), out.file(), err.file()), 0);
  EXPECT_EQ(submit(d, submit_args(kCommit, "main"), out.file(), err.file()), 0);
  EXPECT_EQ(out.text(), "queued job 7\nalready known as job 7\n");
  EXPECT_EQ(std::get<msg::Commit>(d.asked[0]).commit, kCommit) << "normalised to lower case";
  EXPECT_TRUE(std::get<msg::Commit>(d.asked[0]).jobs.empty());
  EXPECT_EQ(err.text(),
            "simpleci: no git repository in the current folder to read .simpleci/jobs/ from: submitting it as one job\n"
            "simpleci: no git repository in the current folder to read .simpleci/jobs/ from: submitting it as one job\n");
  EXPECT_EQ(submit(d, submit_args("HEAD", "main"), out.file(), err.file()), 2);
  EXPECT_EQ(submit(d, submit_args(kCommit, "a..b"), out.file(), err.file()), 2);
  SubmitArgs bad_repo = submit_args(kCommit, "main");
  bad_repo.repo = "../x";
  EXPECT_EQ(submit(d, bad_repo, out.file(), err.file()), 2);
  SubmitArgs bad_dir = submit_args(kCommit, "main");
  bad_dir.git_dir = "/nonexistent/simpleci";
  EXPECT_EQ(submit(d, bad_dir, out.file(), err.file()), 2);
  EXPECT_EQ(d.asked.size(), 2u) << "usage errors ask nothing";
}

// A real repository with a jobs folder, made with the git command line.
class SubmitRepoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/simpleci-submit-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    git_ = "git -c user.name=t -c user.email=t@t -C " + dir_.string() + " ";
    testing::sh(git_ + "init -q -b main");
    fs::create_directories(dir_ / ".simpleci/jobs");
    std::ofstream(dir_ / ".simpleci/jobs/arm") << "#!/bin/sh\n# simpleci: labels=arm64 timeout=90\n";
    std::ofstream(dir_ / ".simpleci/jobs/notes.txt") << "not a job\n";
    fs::permissions(dir_ / ".simpleci/jobs/arm", fs::perms::owner_all);
    testing::sh(git_ + "add -A && " + git_ + "commit -q -m jobs");
    commit_ = testing::sh(git_ + "rev-parse HEAD");
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
  std::string git_, commit_;
};

TEST_F(SubmitRepoTest, SendsTheJobsOfTheCommitAndItsRepository) {
  ScriptedAsker d;
  Captured out, err;
  d.replies = {msg::Accepted{1, 3, false}};
  SubmitArgs a = submit_args(commit_, "main");
  a.git_dir = dir_.string();
  a.repo = "docs";
  ASSERT_EQ(submit(d, a, out.file(), err.file()), 0);
  EXPECT_EQ(out.text(), "queued job 3\n");
  const auto& sent = std::get<msg::Commit>(d.asked[0]);
  EXPECT_EQ(sent.repo, "docs");
  EXPECT_EQ(sent.jobs, (std::vector<msg::JobSpec>{{"arm", {"arm64"}, 90, ""}}));
  EXPECT_EQ(err.text(), "simpleci: .simpleci/jobs/'notes.txt' is skipped: not executable\n");
}

TEST_F(SubmitRepoTest, ReadsTheRepositoryAroundTheCurrentFolder) {
  const fs::path old = fs::current_path();
  fs::current_path(dir_ / ".simpleci");
  ScriptedAsker d;
  Captured out, err;
  d.replies = {msg::Accepted{1, 4, false}};
  EXPECT_EQ(submit(d, submit_args(commit_, "main"), out.file(), err.file()), 0);
  fs::current_path(old);
  ASSERT_EQ(d.asked.size(), 1u);
  EXPECT_EQ(std::get<msg::Commit>(d.asked[0]).jobs.size(), 1u);
}

TEST_F(SubmitRepoTest, ACommitTheRepositoryLacksIsSubmittedAsOneJob) {
  ScriptedAsker d;
  Captured out, err;
  d.replies = {msg::Accepted{1, 5, false}};
  SubmitArgs a = submit_args(kCommit, "main");
  a.git_dir = dir_.string();
  EXPECT_EQ(submit(d, a, out.file(), err.file()), 0);
  EXPECT_TRUE(std::get<msg::Commit>(d.asked[0]).jobs.empty());
  EXPECT_EQ(err.text(), "simpleci: the repository " + dir_.string() + "/ does not have commit " + kCommit +
                            ": submitting it as one job\n");
  EXPECT_EQ(out.text(), "queued job 5\n");
}

TEST(ClientCommands, QueueFullReadsAsTryAgainLater) {
  EXPECT_EQ(error_line(msg::Error{1, msg::ErrorCode::kQueueFull, "5 jobs queued, the limit is 5"}),
            "the dispatcher's queue is full (5 jobs queued, the limit is 5); try again later");
  EXPECT_EQ(error_line(msg::Error{1, msg::ErrorCode::kNotFound, "no job 9"}), "dispatcher: no job 9");
}

TEST(ClientCommands, CancelAndRetryPrintTheOkTextAndRefuseJobZero) {
  ScriptedAsker d;
  Captured out;
  d.replies = {msg::Ok{1, 4, "cancelled job 4"}, msg::Ok{1, 5, "queued job 5"},
               msg::Error{1, msg::ErrorCode::kNotFound, "no job 99"}};
  EXPECT_EQ(cancel(d, 4, out.file()), 0);
  EXPECT_EQ(retry(d, 4, out.file()), 0);
  EXPECT_EQ(cancel(d, 99, out.file()), 1);
  EXPECT_EQ(cancel(d, 0, out.file()), 2);
  EXPECT_EQ(out.text(), "cancelled job 4\nqueued job 5\n");
  EXPECT_TRUE(std::holds_alternative<msg::CancelRequest>(d.asked[0]));
  EXPECT_TRUE(std::holds_alternative<msg::RetryRequest>(d.asked[1]));
}

TEST(ClientCommands, AnotherReplyTypeThanAskedForIsExitOne) {
  ScriptedAsker d;
  Captured out;
  d.replies = {msg::StatusReply{}};
  EXPECT_EQ(cancel(d, 4, out.file()), 1);
}

TEST(ClientCommands, PruneAsksAgainWhileARoundIsFull) {
  ScriptedAsker d;
  Captured out;
  d.replies = {msg::Ok{1, msg::kMaxPrunePerRequest, ""}, msg::Ok{2, 3, ""}};
  EXPECT_EQ(prune(d, 30, out.file()), 0);
  EXPECT_EQ(out.text(), "pruned " + std::to_string(msg::kMaxPrunePerRequest + 3) +
                            " job(s) finished more than 30 days ago\n");
  ASSERT_EQ(d.asked.size(), 2u);
  EXPECT_EQ(std::get<msg::PruneRequest>(d.asked[1]).request_id, 2u);
  EXPECT_EQ(prune(d, 0, out.file()), 2);
}

TEST(ClientCommands, NotifyNamesEachBranchOnceAndPrintsWhomItWoke) {
  ScriptedAsker d;
  Captured out;
  d.replies = {msg::Ok{1, 2, "woke 2 observer(s)"}, msg::Ok{1, 0, "woke 0 observer(s)"}};
  EXPECT_EQ(notify(d, {"main", "feature/x", "main"}, out.file()), 0);
  const auto& n = std::get<msg::Notify>(d.asked.at(0));
  EXPECT_EQ(n.branches, (std::vector<msg::BranchName>{{"main"}, {"feature/x"}}));
  std::vector<std::string> many;
  for (size_t i = 0; i <= msg::kMaxNotifyBranches; ++i) many.push_back("b" + std::to_string(i));
  EXPECT_EQ(notify(d, many, out.file()), 0);
  EXPECT_TRUE(std::get<msg::Notify>(d.asked.at(1)).branches.empty()) << "too many to name: any branch";
  EXPECT_EQ(out.text(), "woke 2 observer(s)\nwoke 0 observer(s)\n");
  EXPECT_EQ(notify(d, {"a..b"}, out.file()), 2);
  EXPECT_EQ(notify(d, {""}, out.file()), 2);
  EXPECT_EQ(d.asked.size(), 2u) << "usage errors ask nothing";
}

TEST(ClientCommands, ResultsOfACommitWithoutJobsIsExitOne) {
  ScriptedAsker d;
  Captured out;
  msg::ResultsReply one;
  one.jobs.push_back(job(3, msg::JobStatus::kFailed));
  one.output = "boom\n";
  d.replies = {msg::ResultsReply{}, one, one};
  EXPECT_EQ(results(d, kCommit, 20, false, out.file()), 1);
  EXPECT_EQ(results(d, kCommit, 20, false, out.file()), 0);
  EXPECT_NE(out.text().find("boom"), std::string::npos);
  Captured json;
  EXPECT_EQ(results(d, "", 20, true, json.file()), 0);
  EXPECT_EQ(nlohmann::json::parse(json.text())["jobs"][0]["job_id"], 3);
  EXPECT_EQ(results(d, "", 0, false, out.file()), 2);
  EXPECT_EQ(results(d, "xyz", 20, false, out.file()), 2);
}

TEST(ClientCommands, WatchOfACommitFollowsItsNewestJobToTheEnd) {
  ScriptedAsker d;
  Captured out, err;
  msg::ResultsReply r;
  r.jobs.push_back(job(9, msg::JobStatus::kRunning));
  msg::WatchReply running{3, 9, 1, msg::JobStatus::kRunning, 0, 0, "r1", 0, "one\n", false};
  msg::WatchReply ended{4, 9, 1, msg::JobStatus::kPassed, 0, 1500, "r1", 4, "two\n", true};
  d.replies = {r, running, ended};
  EXPECT_EQ(watch(d, kCommit, msg::kMinWatchIntervalMs, out.file(), err.file()), 0);
  EXPECT_EQ(out.text(), "one\ntwo\n");
  EXPECT_EQ(err.text(), "simpleci: job 9 running on r1 (attempt 1)\n"
                        "simpleci: job 9 passed (exit 0, 1.5 s, runner r1, attempt 1)\n");
  EXPECT_EQ(std::get<msg::WatchRequest>(d.asked[2]).offset, 4u);
}

TEST(ClientCommands, FindLogNamesTheOnlyRunnerLogOrAsksWhichOne) {
  const fs::path dir = fs::temp_directory_path() / ("simpleci-logs-test-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "runner-b7.log") << "hello\n";
  fs::path path;
  EXPECT_EQ(find_log("runner", dir.string(), &path), 0);
  EXPECT_EQ(path, dir / "runner-b7.log");
  EXPECT_EQ(find_log("dispatcher", dir.string(), &path), 1) << "no such file";
  EXPECT_EQ(find_log("../etc", dir.string(), &path), 2);
  std::ofstream(dir / "runner-b8.log") << "\n";
  EXPECT_EQ(find_log("runner", dir.string(), &path), 2) << "two runner logs";
  Captured out;
  EXPECT_EQ(logs("runner-b7", dir.string(), false, out.file()), 0);
  EXPECT_EQ(out.text(), "hello\n");
  fs::remove_all(dir);
}

TEST(ClientCommands, KeygenWritesAPairAndAuthorisesItForItsRole) {
  const fs::path dir = fs::temp_directory_path() / ("simpleci-keys-test-" + std::to_string(::getpid()));
  Captured out;
  EXPECT_EQ(keygen((dir / "keys").string(), "b7", (dir / "allowed").string(), "runner", out.file()), 0);
  EXPECT_TRUE(fs::exists(dir / "keys" / "b7.key"));
  EXPECT_TRUE(fs::exists(dir / "allowed" / "runners" / "b7.pub"));
  EXPECT_EQ(keygen((dir / "keys").string(), "x", (dir / "allowed").string(), "", out.file()), 2);
  EXPECT_EQ(keygen((dir / "keys").string(), "x", (dir / "allowed").string(), "king", out.file()), 2);
  fs::remove_all(dir);
}

TEST(ClientCommands, WatchWithAFeedShowsPushedOutputAndAsksOnlyForGaps) {
  ScriptedAsker d;
  ScriptedFeed f;
  Captured out, err;
  auto reply = [](uint64_t offset, std::string data, msg::JobStatus st = msg::JobStatus::kRunning) {
    return msg::WatchReply{0, 9, 1, st, 0, 0, "r1", offset, std::move(data), msg::is_final(st)};
  };
  d.replies = {reply(0, "one\n"), reply(4, ""), reply(8, "thr\nfour\n"), reply(17, "five\n", msg::JobStatus::kPassed)};
  auto chunk = [](uint64_t offset, std::string data) { return msg::JobOutput{5, 9, 1, offset, std::move(data)}; };
  f.script = {
      [&](net::FeedHandler& h) {
        f.step = true;
        h.on_snapshot(msg::Snapshot{});
      },
      [&](net::FeedHandler& h) { h.on_output(chunk(0, "one\ntwo\n")); },  // overlaps what was shown
      [&](net::FeedHandler& h) { h.on_output(chunk(12, "four\n")); },      // bytes 8..11 missing
      [&](net::FeedHandler& h) {
        msg::Event e;
        e.kind = static_cast<uint32_t>(msg::EventKind::kJobFinished);
        e.jobs.push_back(job(9, msg::JobStatus::kPassed));
        h.on_event(e);
      },
  };
  ASSERT_NO_THROW(EXPECT_EQ(watch(d, "9", 1000, out.file(), err.file(), &f), 0));
  EXPECT_EQ(f.followed, std::vector<uint64_t>{9});
  EXPECT_TRUE(f.stopped);
  EXPECT_EQ(out.text(), "one\ntwo\nthr\nfour\nfive\n");
  std::vector<uint64_t> offsets;
  for (const auto& m : d.asked) offsets.push_back(std::get<msg::WatchRequest>(m).offset);
  EXPECT_EQ(offsets, (std::vector<uint64_t>{0, 4, 8, 17}));
  EXPECT_NE(err.text().find("simpleci: job 9 passed"), std::string::npos);
}

TEST(ClientCommands, WatchOfAFinishedJobNeedsNoFeed) {
  ScriptedAsker d;
  ScriptedFeed f;
  Captured out, err;
  d.replies = {msg::WatchReply{0, 9, 1, msg::JobStatus::kFailed, 1, 10, "r1", 0, "all\n", true}};
  EXPECT_EQ(watch(d, "9", 1000, out.file(), err.file(), &f), kJobNotPassed);
  EXPECT_TRUE(f.followed.empty());
  EXPECT_EQ(out.text(), "all\n");
}

TEST(ClientCommands, EventsPrintsALinePerEventUntilStopped) {
  ScriptedFeed f;
  FakeClock clock;
  Captured out;
  std::atomic<bool> stop{false};
  f.script = {
      [&](net::FeedHandler& h) { h.on_snapshot(msg::Snapshot{}); },
      [&](net::FeedHandler& h) {
        msg::Event e;
        e.seq = 1;
        e.kind = static_cast<uint32_t>(msg::EventKind::kJobQueued);
        e.at_ms = clock.wall_ms();
        e.jobs.push_back(job(3, msg::JobStatus::kQueued));
        e.queue_length = 1;
        h.on_event(e);
      },
      [&](net::FeedHandler& h) { h.on_output(msg::JobOutput{5, 3, 1, 0, "x"}); },  // not followed: not printed
      [&](net::FeedHandler& h) {
        h.on_interrupted("dropped by the dispatcher");
        stop = true;
      },
  };
  ASSERT_NO_THROW(EXPECT_EQ(events(f, clock, true, false, out.file(), stop), 0));
  EXPECT_TRUE(f.stopped);
  EXPECT_FALSE(f.all_output);
  std::vector<nlohmann::json> lines;
  std::istringstream in(out.text());
  for (std::string l; std::getline(in, l);) lines.push_back(nlohmann::json::parse(l));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["kind"], "snapshot");
  EXPECT_EQ(lines[1]["kind"], "job_queued");
  EXPECT_EQ(lines[1]["job"]["job_id"], 3);
  EXPECT_EQ(lines[1]["seq"], 1);
  EXPECT_EQ(lines[1]["at"], "2026-01-01T00:00:00.000Z");
  EXPECT_EQ(lines[2]["kind"], "interrupted");
  EXPECT_EQ(lines[2]["reason"], "dropped by the dispatcher");
}

}  // namespace
}  // namespace simpleci::client
