// Every subcommand of the real `simpleci` against a real dispatcher (and a runner where a job
// must run): what it prints and its exit code, on success and on the error paths.
#include <gtest/gtest.h>

#include "tests/integration/cluster.h"

namespace simpleci::itest {
namespace {

using namespace std::chrono_literals;

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Runs `simpleci ARGS... --dispatcher ENDPOINT`.
RunResult client(const Cluster& c, std::vector<std::string> args) {
  args.insert(args.begin(), bin("simpleci"));
  args.insert(args.end(), {"--dispatcher", c.endpoint()});
  return run(args);
}

// The job number in "queued job N" / "already known as job N".
uint64_t job_of(const RunResult& r) { return std::stoull(r.output.substr(r.output.rfind(' ') + 1)); }

class Client : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(c.start_dispatcher()) << c.logs(); }
  Cluster c;
  const std::string unknown = std::string(40, 'f');
};

TEST_F(Client, SubmitStatusResultsWatchAndLogsOfAPassedJob) {
  c.start_runner("r1");
  const std::string id = c.upstream().commit({{".simpleci/test", script(0)}}, "passing");
  RunResult sub = client(c, {"submit", id, "--branch", "main"});
  ASSERT_EQ(sub.exit_code, 0) << sub.output;
  ASSERT_TRUE(has(sub.output, "queued job ")) << sub.output;
  RunResult again = client(c, {"submit", id});
  EXPECT_EQ(again.exit_code, 0) << again.output;
  // (After the line saying the folder it runs in has no such commit to read jobs from.)
  EXPECT_TRUE(again.output.ends_with("\nalready known as job " + std::to_string(job_of(sub)) + "\n")) << again.output;
  ASSERT_TRUE(c.wait_result(id)) << c.logs();

  RunResult st = client(c, {"status"});
  EXPECT_EQ(st.exit_code, 0) << st.output;
  EXPECT_TRUE(has(st.output, "runners: 1") && has(st.output, "r1")) << st.output;
  RunResult sj = client(c, {"status", "--json"});
  ASSERT_EQ(sj.exit_code, 0) << sj.output;
  EXPECT_EQ(nlohmann::json::parse(sj.output)["runners"][0]["name"], "r1") << sj.output;

  RunResult list = client(c, {"results"});
  EXPECT_EQ(list.exit_code, 0) << list.output;
  EXPECT_TRUE(has(list.output, "JOB") && has(list.output, id.substr(0, 12)) && has(list.output, "passed"))
      << list.output;
  RunResult one = client(c, {"results", id});
  EXPECT_EQ(one.exit_code, 0) << one.output;
  EXPECT_TRUE(has(one.output, "job " + std::to_string(job_of(sub)) + "  " + id + "  passed")) << one.output;
  EXPECT_TRUE(has(one.output, "simpleci test of " + id)) << one.output;
  RunResult json = client(c, {"results", id, "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.output;
  const nlohmann::json j = nlohmann::json::parse(json.output);
  EXPECT_EQ(j["jobs"][0]["status"], "passed") << json.output;
  EXPECT_TRUE(has(j["output"].get<std::string>(), "simpleci test of " + id)) << json.output;

  RunResult w = client(c, {"watch", std::to_string(job_of(sub))});
  EXPECT_EQ(w.exit_code, 0) << w.output;
  EXPECT_TRUE(has(w.output, "simpleci test of " + id) && has(w.output, "passed (exit 0")) << w.output;

  const std::string logs = (c.root() / "logs").string();
  RunResult dl = run({bin("simpleci"), "logs", "dispatcher", "--log-dir", logs});
  EXPECT_EQ(dl.exit_code, 0) << dl.output;
  EXPECT_TRUE(has(dl.output, "listening on")) << dl.output;
  RunResult rl = run({bin("simpleci"), "logs", "runner", "--log-dir", logs});
  EXPECT_EQ(rl.exit_code, 0) << rl.output;
  EXPECT_TRUE(has(rl.output, "runner r1 for")) << rl.output;
}

TEST_F(Client, UnknownJobsAndCommitsAreOneLineAndExitOne) {
  for (const auto& args : std::vector<std::vector<std::string>>{{"results", unknown},
                                                                {"results", unknown, "--json"},
                                                                {"watch", unknown},
                                                                {"watch", "999"},
                                                                {"cancel", "999"},
                                                                {"retry", "999"}}) {
    RunResult r = client(c, args);
    EXPECT_EQ(r.exit_code, 1) << args[0] << ": " << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << args[0] << ": " << r.output;
    EXPECT_TRUE(has(r.output, "no job")) << args[0] << ": " << r.output;
  }
  RunResult logs = run({bin("simpleci"), "logs", "observer", "--log-dir", (c.root() / "logs").string()});
  EXPECT_EQ(logs.exit_code, 1) << logs.output;
  EXPECT_TRUE(has(logs.output, "no log at")) << logs.output;
}

TEST_F(Client, CancelAQueuedJobThenRetryIt) {
  // No runner: the job stays queued until cancelled.
  const std::string id = c.upstream().commit({{".simpleci/test", script(0)}}, "queued");
  RunResult sub = client(c, {"submit", id});
  ASSERT_EQ(sub.exit_code, 0) << sub.output;
  const std::string job = std::to_string(job_of(sub));
  RunResult early = client(c, {"retry", job});
  EXPECT_EQ(early.exit_code, 1) << early.output;
  EXPECT_TRUE(has(early.output, "is still queued")) << early.output;

  RunResult cn = client(c, {"cancel", job});
  EXPECT_EQ(cn.exit_code, 0) << cn.output;
  EXPECT_EQ(cn.output, "cancelled job " + job + "\n");
  RunResult twice = client(c, {"cancel", job});
  EXPECT_EQ(twice.exit_code, 1) << twice.output;
  EXPECT_TRUE(has(twice.output, "already ended")) << twice.output;
  RunResult w = client(c, {"watch", job});
  EXPECT_EQ(w.exit_code, 3) << "a cancelled job did not pass: " << w.output;
  EXPECT_TRUE(has(w.output, "cancelled")) << w.output;

  RunResult rt = client(c, {"retry", job});
  EXPECT_EQ(rt.exit_code, 0) << rt.output;
  EXPECT_TRUE(has(rt.output, "queued job ")) << rt.output;
  EXPECT_GT(job_of(rt), job_of(sub));
}

TEST_F(Client, PruneSaysHowManyItDropped) {
  RunResult r = client(c, {"prune", "--older-than", "30"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "pruned 0 job(s) finished more than 30 days ago\n");
  RunResult bad = client(c, {"prune", "--older-than", "36501"});
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_TRUE(has(bad.output, "--older-than must be between 1 and 36500")) << bad.output;
}

}  // namespace
}  // namespace simpleci::itest
