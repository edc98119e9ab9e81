// The event feed end to end: the real dispatcher and runner, `simpleci events --json` seeing a
// job go by, and `simpleci watch` showing a running job's output as it is printed, pushed.
#include <csignal>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "tests/integration/cluster.h"

namespace simpleci::itest {
namespace {

using namespace std::chrono_literals;

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// `simpleci ARGS... --dispatcher ENDPOINT` running beside the test, its output in a log file.
std::unique_ptr<Process> client(const Cluster& c, const std::string& name, std::vector<std::string> args) {
  args.insert(args.begin(), bin("simpleci"));
  args.insert(args.end(), {"--dispatcher", c.endpoint()});
  return std::make_unique<Process>(name, args, c.root() / (name + ".out"));
}

RunResult submit(const Cluster& c, const std::string& commit) {
  return run({bin("simpleci"), "submit", commit, "--branch", "main", "--dispatcher", c.endpoint()});
}

// The JSON lines printed so far (a line cut short at the end is left for later).
std::vector<nlohmann::json> json_lines(const std::string& text) {
  std::vector<nlohmann::json> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    auto j = nlohmann::json::parse(l, nullptr, false);
    if (!j.is_discarded()) out.push_back(std::move(j));
  }
  return out;
}

TEST(Events, AJsonLineForEachStepOfASubmittedCommit) {
  Cluster c;
  ASSERT_TRUE(c.start_dispatcher()) << c.logs();
  c.start_runner("r1");
  auto ev = client(c, "events", {"events", "--json"});
  ASSERT_TRUE(wait_until([&] { return has(ev->log(), "\"kind\":\"snapshot\""); }, 10s)) << ev->log() << c.logs();

  const std::string id = c.upstream().commit({{".simpleci/test", script(0)}}, "passing");
  RunResult sub = submit(c, id);
  ASSERT_EQ(sub.exit_code, 0) << sub.output;
  auto kinds_of_commit = [&] {
    std::vector<std::string> kinds;
    for (const auto& j : json_lines(ev->log())) {
      if (j.contains("job") && j["job"]["commit"] == id) kinds.push_back(j["kind"]);
    }
    return kinds;
  };
  ASSERT_TRUE(wait_until([&] { return kinds_of_commit().size() >= 3; }, 30s)) << ev->log() << c.logs();
  EXPECT_EQ(kinds_of_commit(), (std::vector<std::string>{"job_queued", "job_started", "job_finished"})) << ev->log();
  uint64_t seq = 0;
  for (const auto& j : json_lines(ev->log())) {
    if (j["kind"] == "snapshot") continue;
    EXPECT_GT(j["seq"].get<uint64_t>(), seq) << j.dump();
    seq = j["seq"];
    if (j.contains("job") && j["kind"] == "job_finished") {
      EXPECT_EQ(j["job"]["status"], "passed");
      EXPECT_EQ(j["job"]["branch"], "main");
      EXPECT_EQ(j["job"]["runner"], "r1");
    }
  }
  EXPECT_EQ(ev->stop(SIGINT), 0) << ev->log();
  EXPECT_FALSE(has(ev->log(), "interrupted")) << ev->log();
}

// The job prints a first part, far more than the dispatcher stores (its output cap is 4 KiB),
// then waits for the test to create a file before it prints the rest and ends: watch must show
// the whole first part while the job is still running.
TEST(Events, WatchShowsTheWholeOutputWhileTheJobRuns) {
  Cluster c;
  ASSERT_TRUE(c.start_dispatcher("tcp://127.0.0.1:0", {"--output-cap", "4096"})) << c.logs();
  c.start_runner("r1");
  const fs::path go = c.root() / "go";
  const std::string body = "i=0; while [ $i -lt 2000 ]; do echo \"early line $i\"; i=$((i+1)); done\n"
                           "while [ ! -e " + go.string() + " ]; do sleep 0.02; done\necho late line";
  const std::string id = c.upstream().commit({{".simpleci/test", script(0, body)}}, "slow");
  RunResult sub = submit(c, id);
  ASSERT_EQ(sub.exit_code, 0) << sub.output;
  auto w = client(c, "watch", {"watch", id});
  ASSERT_TRUE(wait_until([&] { return has(w->log(), "early line 1999\n"); }, 30s)) << w->log() << c.logs();
  EXPECT_FALSE(c.wait_result(id, 0ms)) << "the job ended before the test let it";
  EXPECT_TRUE(w->running());
  std::ofstream(go) << "go\n";
  ASSERT_TRUE(wait_until([&] { return !w->running(); }, 30s)) << w->log();
  EXPECT_EQ(w->stop(), 0) << w->log();
  const std::string out = w->log();
  for (int i : {0, 1, 500, 1999}) {
    const std::string line = "early line " + std::to_string(i) + "\n";
    EXPECT_EQ(out.find(line), out.rfind(line)) << "printed twice: " << line;
    EXPECT_TRUE(has(out, line)) << line;
  }
  EXPECT_LT(out.find("early line 1999\n"), out.find("late line"));
  EXPECT_TRUE(has(out, "passed (exit 0")) << out;
}

}  // namespace
}  // namespace simpleci::itest
