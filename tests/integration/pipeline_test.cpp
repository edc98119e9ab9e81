// End-to-end tests: the real dispatcher, runners and observer against a real git repository on
// loopback. Each test waits on conditions with generous deadlines; none asserts a timing.
#include <signal.h>

#include <fstream>
#include <set>

#include <gtest/gtest.h>

#include "tests/integration/cluster.h"

namespace simpleci::itest {
namespace {

using namespace std::chrono_literals;

TEST(Pipeline, BurstOfTenCommitsGivesTenResults) {
  Cluster c;
  ASSERT_TRUE(c.start_dispatcher()) << c.logs();
  c.start_runner("r1");
  c.start_runner("r2");
  c.start_observer(100);
  // The observer's first start sends the current tip; wait for it so the burst is "new".
  ASSERT_TRUE(c.wait_result(c.upstream().git({"rev-parse", "HEAD"}).substr(0, 40))) << c.logs();
  ASSERT_TRUE(wait_until([&] {
    auto s = query_status(c.endpoint(), 1s);
    return s && s->runners.size() == 2;
  }, 20s)) << c.logs();

  std::vector<std::string> burst;
  for (int i = 0; i < 10; ++i) {
    burst.push_back(c.upstream().commit({{"file.txt", std::to_string(i)}}, "burst " + std::to_string(i)));
  }
  std::set<std::string> runners_seen;
  for (const auto& id : burst) {
    auto r = c.wait_result(id, 60s);
    ASSERT_TRUE(r) << "no result for " << id << "\n" << c.logs();
    EXPECT_EQ((*r)["status"], "passed") << r->dump();
    EXPECT_EQ((*r)["commit"], id);
    EXPECT_EQ((*r)["branch"], "main");
    EXPECT_EQ((*r)["attempt"], 1);
    runners_seen.insert((*r)["runner"].get<std::string>());
    // The output file holds what the test printed.
    std::string text = read_text(c.results_dir() / id);
    EXPECT_NE(text.find("simpleci test of " + id), std::string::npos) << text;
  }
  EXPECT_EQ(runners_seen.size(), 2u) << "work should spread over both runners";
}

TEST(Pipeline, FailingTestEndsAsFailedWithItsOutput) {
  Cluster c;
  ASSERT_TRUE(c.start_dispatcher()) << c.logs();
  c.start_runner("r1");
  c.start_observer(100);
  std::string id = c.upstream().commit({{".simpleci/test", script(3, "echo boom >&2")}}, "broken");
  auto r = c.wait_result(id);
  ASSERT_TRUE(r) << c.logs();
  EXPECT_EQ((*r)["status"], "failed");
  EXPECT_EQ((*r)["exit_code"], 3);
  std::string text = read_text(c.results_dir() / id);
  EXPECT_NE(text.find("boom"), std::string::npos) << text;
}

TEST(Pipeline, WatchShowsOutputWhileTheJobRunsThenHowItEnded) {
  Cluster c;
  ASSERT_TRUE(c.start_dispatcher()) << c.logs();
  c.start_runner("r1");
  fs::path go = c.root() / "go";
  // Prints a line, then waits (at most 30 s) for the test to let it finish.
  std::string body = "echo step one\ni=0\nwhile [ ! -e " + go.string() +
                     " ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done\necho step two";
  std::string id = c.upstream().commit({{".simpleci/test", script(4, body)}}, "watched");
  RunResult sub = run({bin("simpleci"), "submit", id, "--dispatcher", c.endpoint()});
  ASSERT_EQ(sub.exit_code, 0) << sub.output;

  Process watch("watch", {bin("simpleci"), "watch", id, "--dispatcher", c.endpoint(), "--interval-ms", "50"},
                c.root() / "watch.out");
  ASSERT_TRUE(wait_until([&] { return watch.log().find("step one") != std::string::npos; }, 30s))
      << watch.log() << c.logs();
  EXPECT_TRUE(watch.running()) << "the job is still running, so watch must be too";
  EXPECT_EQ(watch.log().find("step two"), std::string::npos);
  std::ofstream(go).put('\n');
  ASSERT_TRUE(wait_until([&] { return !watch.running(); }, 30s)) << watch.log() << c.logs();
  EXPECT_EQ(watch.stop(), 3) << "exit 3: the job did not pass";
  std::string text = watch.log();
  EXPECT_NE(text.find("step one\nstep two\n"), std::string::npos) << text;
  EXPECT_NE(text.find("running on r1 (attempt 1)"), std::string::npos) << text;
  EXPECT_NE(text.find("failed (exit 4"), std::string::npos) << text;

  // A finished job: its whole output at once; a commit nobody submitted: one clear line.
  RunResult again = run({bin("simpleci"), "watch", id, "--dispatcher", c.endpoint()});
  EXPECT_EQ(again.exit_code, 3) << again.output;
  EXPECT_NE(again.output.find("simpleci test of " + id), std::string::npos) << again.output;
  RunResult none = run({bin("simpleci"), "watch", std::string(40, 'f'), "--dispatcher", c.endpoint()});
  EXPECT_EQ(none.exit_code, 1) << none.output;
  EXPECT_NE(none.output.find("no jobs"), std::string::npos) << none.output;
}

TEST(Pipeline, RunnerKilledMidJobIsRequeuedAndPassesOnTheOtherAtAttemptTwo) {
  Cluster c;
  ASSERT_TRUE(c.start_dispatcher()) << c.logs();
  c.start_runner("r1");
  c.start_runner("r2");
  fs::path marks = c.root() / "marks";
  fs::create_directories(marks);
  // The test records which runner's clone it runs in, then takes a while.
  std::string slow = "basename \"$PWD\" >> " + marks.string() + "/started\nsleep 2";
  std::string id = c.upstream().commit({{".simpleci/test", script(0, slow)}}, "slow");
  // Submit by hand (no observer): only this commit is in play.
  RunResult sub = run({bin("simpleci"), "submit", id, "--branch", "main", "--dispatcher", c.endpoint()});
  ASSERT_EQ(sub.exit_code, 0) << sub.output;

  std::string first;
  ASSERT_TRUE(wait_until(
      [&] {
        std::ifstream in(marks / "started");
        return static_cast<bool>(std::getline(in, first)) && !first.empty();
      },
      20s))
      << c.logs();
  ASSERT_TRUE(first == "r1" || first == "r2") << first;
  c.runner(first).signal(SIGKILL);

  auto r = c.wait_result(id, 30s);
  ASSERT_TRUE(r) << c.logs();
  EXPECT_EQ((*r)["status"], "passed") << r->dump();
  EXPECT_EQ((*r)["attempt"], 2) << r->dump();
  EXPECT_EQ((*r)["runner"], first == "r1" ? "r2" : "r1") << r->dump();
}

TEST(Pipeline, DispatcherKilledAndRestartedLosesNothing) {
  Cluster c;
  ASSERT_TRUE(c.start_dispatcher()) << c.logs();
  std::string endpoint = c.endpoint();
  c.start_runner("r1");
  c.start_observer(100);
  std::string tip = c.upstream().git({"rev-parse", "HEAD"}).substr(0, 40);
  ASSERT_TRUE(c.wait_result(tip)) << c.logs();

  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    ids.push_back(c.upstream().commit({{".simpleci/test", script(0, "sleep 0.4")}, {"n", std::to_string(i)}},
                                      "slow " + std::to_string(i)));
  }
  // Wait until the dispatcher has accepted all five (one running, the rest queued), then kill it.
  ASSERT_TRUE(wait_until(
      [&] {
        auto s = query_status(endpoint, 500ms);
        return s && s->queue_length + s->running.size() >= 4;
      },
      20s))
      << c.logs();
  c.dispatcher().signal(SIGKILL);
  ASSERT_TRUE(wait_until([&] { return !c.dispatcher().running(); }, 5s));

  ASSERT_TRUE(c.start_dispatcher(endpoint)) << c.logs();
  for (const auto& id : ids) {
    auto r = c.wait_result(id, 60s);
    ASSERT_TRUE(r) << "lost " << id << "\n" << c.logs();
    EXPECT_EQ((*r)["status"], "passed") << r->dump();
    auto jobs = query_results(c.endpoint(), id);
    ASSERT_TRUE(jobs);
    EXPECT_EQ(jobs->jobs.size(), 1u) << "a commit was queued twice: " << id;
  }
}

TEST(Pipeline, OriginalFlowSpellingWithDefaultPythonTests) {
  Cluster c;
  ASSERT_TRUE(c.start_dispatcher()) << c.logs();
  std::string port = c.endpoint().substr(c.endpoint().rfind(':') + 1);
  // A repository in the original's shape: tests/ run by python's unittest, no .simpleci/test.
  c.upstream().git({"rm", "-q", "-r", ".simpleci"});
  std::string id = c.upstream().commit(
      {{"tests/test_demo.py",
        "import unittest\n\nclass Demo(unittest.TestCase):\n    def test_ok(self):\n"
        "        self.assertEqual(1 + 1, 2)\n"}},
      "python tests");
  fs::path rclone = c.root() / "clones" / "runner";
  fs::path oclone = c.root() / "clones" / "obs";
  GitRepo::clone(c.upstream().dir(), rclone);
  GitRepo::clone(c.upstream().dir(), oclone);
  Process runner("runner", {bin("simpleci-runner"), "--dispatcher-server=localhost:" + port,
                            "--log-dir", (c.root() / "logs").string(), rclone.string()},
                 c.root() / "runner-orig.out");
  Process observer("observer", {bin("simpleci-observer"), "--dispatcher-server=localhost:" + port,
                                "--poll-ms", "100", "--log-dir", (c.root() / "logs").string(),
                                oclone.string()},
                   c.root() / "observer-orig.out");
  auto r = c.wait_result(id, 30s);
  ASSERT_TRUE(r) << c.logs();
  EXPECT_EQ((*r)["status"], "passed") << r->dump();
  observer.stop();
  runner.stop();
}

}  // namespace
}  // namespace simpleci::itest
