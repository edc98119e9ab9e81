// Bad input on the command line: every executable answers with one clear line naming the
// problem and a non-zero exit (2 for usage errors, 1 for runtime failures).
#include <gtest/gtest.h>

#include <fstream>

#include "tests/integration/cluster.h"

namespace simpleci::itest {
namespace {

struct BadCase {
  std::string what;
  std::vector<std::string> argv;  // argv[0] is the executable name in build/bin
  int exit_code;
  std::string mentions;  // the line must name this
};

int lines(const std::string& s) {
  int n = 0;
  for (char ch : s) n += ch == '\n';
  return n + (!s.empty() && s.back() != '\n');
}

// Runs every case from cwd: each must exit with its code and say so in one line naming its value.
void expect_one_line_each(std::vector<BadCase> cases, const fs::path& cwd) {
  for (auto& c : cases) {
    c.argv[0] = bin(c.argv[0]);
    RunResult r = run(c.argv, cwd, std::chrono::milliseconds(10000));
    EXPECT_EQ(r.exit_code, c.exit_code) << c.what << ": " << r.output;
    EXPECT_EQ(lines(r.output), 1) << c.what << ": " << r.output;
    EXPECT_NE(r.output.find(c.mentions), std::string::npos) << c.what << ": " << r.output;
  }
}

TEST(CommandLine, BadInputGivesOneClearLineAndNonZeroExit) {
  TempDir tmp;
  fs::path not_repo = tmp.path() / "plain";
  fs::create_directories(not_repo);
  GitRepo repo = GitRepo::init(tmp.path() / "repo");
  repo.commit({{"a", "b"}}, "one");
  fs::path clone = tmp.path() / "clone";
  GitRepo::clone(repo.dir(), clone);
  std::string logs = (tmp.path() / "logs").string();
  std::string missing = (tmp.path() / "missing").string();

  std::vector<BadCase> cases = {
      {"unknown flag", {"simpleci-dispatcher", "--frobnicate"}, 2, "frobnicate"},
      {"bad endpoint", {"simpleci-dispatcher", "--bind", "tcp://127.0.0.1:99999"}, 2, "99999"},
      {"attempts 0", {"simpleci-dispatcher", "--max-attempts", "0"}, 2, "max-attempts"},
      {"max-queued 0", {"simpleci-dispatcher", "--max-queued", "0"}, 2, "max-queued"},
      {"prune after -1 days", {"simpleci-dispatcher", "--prune-after-days", "-1"}, 2, "prune-after-days"},
      {"prune after 36501 days", {"simpleci-dispatcher", "--prune-after-days", "36501"}, 2, "36501"},
      {"prune 0 days", {"simpleci", "prune", "--older-than", "0"}, 2, "older-than"},
      {"prune without days", {"simpleci", "prune"}, 2, "older-than"},
      {"public bind without curve", {"simpleci-dispatcher", "--bind", "tcp://0.0.0.0:0"}, 2, "insecure"},
      {"jobs 0", {"simpleci-runner", "--jobs", "0", clone.string()}, 2, "jobs"},
      {"runner missing clone", {"simpleci-runner", missing}, 1, missing},
      {"runner not a repo", {"simpleci-runner", not_repo.string()}, 1, not_repo.string()},
      {"runner bad server", {"simpleci-runner", "--dispatcher-server=localhost", clone.string()}, 2, "localhost"},
      {"runner bad name", {"simpleci-runner", "--name", "../x", clone.string()}, 2, "name"},
      {"runner empty test command", {"simpleci-runner", "--test-command", "", clone.string()}, 2, "--test-command"},
      {"runner plain text far away", {"simpleci-runner", "--dispatcher", "tcp://192.0.2.7:8888", clone.string()}, 2, "--insecure"},
      {"observer missing clone", {"simpleci-observer", missing}, 1, missing},
      {"observer not a repo", {"simpleci-observer", not_repo.string()}, 1, not_repo.string()},
      {"observer poll 0", {"simpleci-observer", "--poll-ms", "0", clone.string()}, 2, "poll-ms"},
      {"client bad commit", {"simpleci", "submit", "not-a-commit"}, 2, "not-a-commit"},
      {"client unknown sub", {"simpleci", "explode"}, 2, "explode"},
      {"watch neither job nor commit", {"simpleci", "watch", "HEAD~1"}, 2, "HEAD~1"},
      {"watch job 0", {"simpleci", "watch", "0"}, 2, "job number"},
      {"watch interval", {"simpleci", "watch", "5", "--interval-ms", "1"}, 2, "interval-ms"},
      {"notify bad branch", {"simpleci", "notify", "--branch", "a..b"}, 2, "a..b"},
  };
  for (auto& c : cases) {
    // The components get a log folder of their own; the client has no --log-dir.
    if (c.argv[0] != "simpleci") c.argv.insert(c.argv.end(), {"--log-dir", logs});
  }
  expect_one_line_each(cases, tmp.path());
}

// A folder that cannot be created or written is a runtime failure (1), whichever flag names it;
// a bad --log-level is a usage error (2), found before anything is done.
TEST(CommandLine, AFolderThatCannotBeMadeIsExitOneAndABadLogLevelIsExitTwo) {
  TempDir tmp;
  GitRepo repo = GitRepo::init(tmp.path() / "repo");
  repo.commit({{"a", "b"}}, "one");
  const std::string clone = (tmp.path() / "clone").string();
  GitRepo::clone(repo.dir(), clone);
  const fs::path file = tmp.path() / "a-file";
  std::ofstream(file) << "not a folder\n";
  const std::string under_file = (file / "sub").string(), logs = (tmp.path() / "logs").string();
  const std::string state = (tmp.path() / "state").string(), bind = "tcp://127.0.0.1:0";
  std::vector<BadCase> cases = {
      {"dispatcher log dir", {"simpleci-dispatcher", "--bind", bind, "--state-dir", state, "--log-dir", under_file}, 1, "log-dir"},
      {"dispatcher state dir", {"simpleci-dispatcher", "--bind", bind, "--state-dir", under_file, "--log-dir", logs}, 1, under_file},
      {"runner log dir", {"simpleci-runner", "--log-dir", under_file, clone}, 1, "log-dir"},
      {"observer log dir", {"simpleci-observer", "--log-dir", under_file, clone}, 1, "log-dir"},
      {"observer state file", {"simpleci-observer", "--state-file", under_file + "/cursor", "--log-dir", logs, clone}, 1, under_file},
      {"dispatcher log level", {"simpleci-dispatcher", "--log-level", "loud", "--log-dir", logs}, 2, "--log-level"},
      {"runner log level", {"simpleci-runner", "--log-level", "loud", clone}, 2, "--log-level"},
  };
  expect_one_line_each(cases, tmp.path());
}

TEST(CommandLine, AddressInUseIsOneLineAndExitOne) {
  Cluster c;
  ASSERT_TRUE(c.start_dispatcher()) << c.logs();
  TempDir other;
  RunResult r = run({bin("simpleci-dispatcher"), "--bind", c.endpoint(), "--state-dir",
                     (other.path() / "s").string(), "--log-dir", (other.path() / "l").string()},
                    other.path(), std::chrono::milliseconds(10000));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(lines(r.output), 1) << r.output;
  EXPECT_NE(r.output.find("in use"), std::string::npos) << r.output;
}

TEST(CommandLine, ClientWithNoDispatcherSaysSoWithinItsTimeout) {
  // Port 1 on loopback: nothing listens there for an unprivileged service.
  RunResult r = run({bin("simpleci"), "status", "--dispatcher", "tcp://127.0.0.1:1",
                     "--timeout-ms", "300"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("no answer"), std::string::npos) << r.output;
}

// The benchmarks are programs, not tests; this only checks that each one still runs (small)
// and ends with its line of JSON carrying the figures it promises. No figure is judged.
TEST(Benchmarks, EachSubcommandEndsWithItsJsonLine) {
  struct Case {
    std::vector<std::string> args;
    std::vector<std::string> keys;
    bool may_miss_target = false;  // exit 3 (a target missed on a busy machine) is still a run
  };
  const std::vector<Case> cases = {
      {{"dispatch", "--runners", "2", "--jobs", "300"},
       {"jobs_per_s", "p50_ms", "p99_ms", "ceiling_jobs_per_s", "ratio_to_ceiling"}},
      {{"e2e", "--commits", "2", "--poll-ms", "50"}, {"p50_ms", "p99_ms"}},
      {{"checkout", "--files", "60", "--commits", "3"},
       {"libgit2_p50_ms", "git_p50_ms", "ratio_to_git"}},
      {{"soak", "--count", "20", "--poll-ms", "10"},
       {"observer_rss_start_kb", "observer_rss_end_kb", "observer_rss_peak_kb", "observer_growth_kb_per_1000",
        "runner_rss_start_kb", "runner_rss_end_kb", "runner_rss_peak_kb", "runner_growth_kb_per_1000"}},
      {{"jobs", "--commits", "10", "--runners", "2"},
       {"jobs_per_s", "floor_jobs_per_s", "ratio_to_floor", "cpu_ms_per_job", "floor_cpu_ms_per_spawn",
        "cpu_ratio_to_floor"}},
      {{"latency", "--samples", "3"}, {"p50_ms", "p90_ms", "floor_p50_ms", "over_floor_ms"}},
      {{"idle", "--seconds", "2"}, {"observer_cpu_pct", "dispatcher_rss_kb", "runner_rss_kb"}},
      {{"dispatch", "--runners", "2", "--jobs", "300", "--subscribers", "2", "--pairs", "2"},
       {"jobs_per_s", "median_jobs_per_s_with_subscribers", "ratio_with_subscribers", "cpu_ratio_with_subscribers"}},
      {{"web", "--commits", "10", "--clients", "5", "--output-mib", "1", "--read-kb-s", "20000"},
       {"event_after_file_ms_p99", "late_events", "missing_events", "fanout_ms_p99", "web_rss_mb_max",
        "reader_matches_stored", "web_rss_mb_after_readers", "web_fds_before_readers", "web_fds_after_readers"},
       true},
  };
  for (const auto& c : cases) {
    std::vector<std::string> argv = {bin("simpleci-bench")};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    RunResult r = run(argv);
    if (!(c.may_miss_target && r.exit_code == 3)) {
      ASSERT_EQ(r.exit_code, 0) << c.args[0] << ": " << r.output;
    }
    std::string text = r.output;
    while (!text.empty() && text.back() == '\n') text.pop_back();
    const std::string last = text.substr(text.rfind('\n') + 1);
    nlohmann::json j = nlohmann::json::parse(last, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << c.args[0] << ": last line is not JSON: " << last;
    for (const auto& k : c.keys) EXPECT_TRUE(j.contains(k)) << c.args[0] << " lacks " << k << ": " << last;
    if (c.may_miss_target) {  // late is a matter of load; lost events or bytes are not
      EXPECT_EQ(j.value("missing_events", -1), 0) << last;
      EXPECT_EQ(j.value("reader_matches_stored", false), true) << last;
      EXPECT_LE(j.value("web_fds_after_readers", 1000), j.value("web_fds_before_readers", 0)) << last;
    }
  }
}

}  // namespace
}  // namespace simpleci::itest
