// A runner whose endpoint is answered by someone else: a small ROUTER of the test's own plays
// the dispatcher over plain loopback TCP and asks the real runner to run `id > FILE`. The
// runner must run its own --test-command instead, and it refuses plain text to another
// machine unless told --insecure.
#include <signal.h>

#include <algorithm>

#include <gtest/gtest.h>

#include "messages/codec.h"
#include "tests/integration/harness.h"
#include "tools/bench/fake_dispatcher.h"

namespace simpleci::itest {
namespace {

using namespace std::chrono_literals;

using bench::FakeDispatcher;  // a ROUTER on a loopback port playing the dispatcher

TEST(RunnerTrust, JobCommandFromAnUnauthenticatedPeerIsNeverRun) {
  TempDir tmp;
  GitRepo upstream = GitRepo::init(tmp.path() / "upstream");
  std::string plain = upstream.commit({{"README", "no .simpleci/test here\n"}}, "first");
  GitRepo::clone(upstream.dir(), tmp.path() / "clone");
  const fs::path owned = tmp.path() / "owned";
  FakeDispatcher fake;
  Process runner("runner", {bin("simpleci-runner"), "--dispatcher", fake.endpoint(), "--name", "victim",
                            "--log-dir", (tmp.path() / "logs").string(), "--test-command",
                            "echo runner-own-tests", (tmp.path() / "clone").string()},
                 tmp.path() / "runner.out");
  auto reg = fake.wait_for<msg::Register>(10s);
  ASSERT_TRUE(reg) << runner.log();
  ASSERT_TRUE(fake.send(msg::Welcome{200}));
  const std::string evil = "id > " + owned.string();
  // A commit origin has (no .simpleci/test), then one it does not have.
  const std::string missing(40, 'e');
  uint64_t job = 0;
  for (const std::string& commit : {plain, missing}) {
    ++job;
    ASSERT_TRUE(fake.send(msg::Job{job, 1, commit, "main", evil, 60, 4096}));
    std::optional<msg::Result> res;
    wait_until(
        [&] {
          fake.send(msg::Heartbeat{});
          auto r = fake.wait_for<msg::Result>(100ms);
          if (r && r->job_id == job) res = r;
          return res.has_value();
        },
        20s);
    ASSERT_TRUE(res) << "no RESULT for job " << job << "\n" << runner.log();
    fake.send(msg::ResultAck{job, 1});
    if (commit == plain) {
      EXPECT_EQ(res->status, msg::JobStatus::kPassed) << res->output;
      EXPECT_NE(res->output.find("runner-own-tests"), std::string::npos) << res->output;
    } else {
      EXPECT_EQ(res->status, msg::JobStatus::kError) << res->output;
    }
    EXPECT_FALSE(fs::exists(owned)) << "the runner ran a command sent by an unauthenticated peer";
  }
  EXPECT_NE(runner.log().find("ignoring the dispatcher's test command"), std::string::npos) << runner.log();
}

TEST(RunnerTrust, PlainTextToAnotherMachineIsRefusedWithoutInsecure) {
  TempDir tmp;
  GitRepo upstream = GitRepo::init(tmp.path() / "upstream");
  upstream.commit({{"README", "x\n"}}, "first");
  GitRepo::clone(upstream.dir(), tmp.path() / "clone");
  const std::vector<std::string> base = {bin("simpleci-runner"), "--dispatcher", "tcp://10.1.2.3:8888",
                                         "--name", "far", "--log-dir", (tmp.path() / "logs").string()};
  std::vector<std::string> argv = base;
  argv.push_back((tmp.path() / "clone").string());
  RunResult refused = run(argv);
  EXPECT_EQ(refused.exit_code, 2) << refused.output;
  EXPECT_EQ(refused.output.rfind("simpleci-runner: refusing plain-text connection to tcp://10.1.2.3:8888", 0), 0u)
      << refused.output;
  EXPECT_EQ(std::count(refused.output.begin(), refused.output.end(), '\n'), 1) << refused.output;

  argv = base;
  argv.push_back("--insecure");
  argv.push_back((tmp.path() / "clone").string());
  Process runner("runner", argv, tmp.path() / "runner.out");
  EXPECT_TRUE(wait_until([&] { return runner.log().find("--insecure: talking plain text") != std::string::npos; }, 10s))
      << runner.log();
  EXPECT_TRUE(runner.running());
  EXPECT_EQ(runner.stop(SIGTERM), 0) << runner.log();
}

}  // namespace
}  // namespace simpleci::itest
