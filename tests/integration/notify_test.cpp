// A push announced with `simpleci notify` (by hand, and by tools/post-receive in a bare
// repository) is tested at once, long before the observer's next poll.
#include <gtest/gtest.h>

#include "tests/integration/cluster.h"

namespace simpleci::itest {
namespace {

using namespace std::chrono_literals;

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// An observer that polls once a minute, with its first look (the current tip) tested.
class Notify : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(c.start_dispatcher()) << c.logs();
    c.start_runner("r1");
    c.start_observer(60000);
    ASSERT_TRUE(c.wait_result(c.upstream().git({"rev-parse", "HEAD"}).substr(0, 40))) << c.logs();
  }
  // `simpleci notify ARGS...` until the dispatcher knows the observer (its OBSERVER_HELLO may
  // still be on its way): true once it says it woke one.
  bool notify_until_woken(std::vector<std::string> args) {
    args.insert(args.begin(), {bin("simpleci"), "notify", "--dispatcher", c.endpoint()});
    return wait_until(
        [&] {
          last = run(args);
          return last.exit_code == 0 && has(last.output, "woke 1 observer(s)");
        },
        10s);
  }
  Cluster c;
  RunResult last;
};

TEST_F(Notify, ANotifiedPushIsTestedLongBeforeTheNextPoll) {
  const std::string id = c.upstream().commit({{"file.txt", "pushed"}}, "pushed");
  ASSERT_TRUE(notify_until_woken({"--branch", "main"})) << last.output << c.logs();
  // The observer's next poll is a minute after its start; this waits 20 s at most.
  auto r = c.wait_result(id, 20s);
  ASSERT_TRUE(r) << c.logs();
  EXPECT_EQ((*r)["status"], "passed");
  // A notify for a branch the observer does not watch wakes it, and it stays asleep.
  ASSERT_TRUE(notify_until_woken({"--branch", "elsewhere"})) << last.output;
}

TEST_F(Notify, ThePostReceiveHookNotifiesTheBranchesOfAPush) {
  // A bare repository with the hook, pushed to from a work clone.
  const fs::path bare = c.root() / "project.git";
  ASSERT_EQ(run({"git", "clone", "-q", "--bare", c.upstream().dir().string(), bare.string()}).exit_code, 0);
  const fs::path hook = bare / "hooks" / "post-receive";
  fs::copy_file(fs::path(SIMPLECI_SOURCE_DIR) / "tools" / "post-receive", hook);
  fs::permissions(hook, fs::perms::owner_all, fs::perm_options::add);
  GitRepo work = GitRepo::clone(bare, c.root() / "work");
  work.commit({{"file.txt", "via the hook"}}, "pushed through the hook");
  // The observer is known: its first commit, sent after its OBSERVER_HELLO, was tested.
  const RunResult push = run({"sh", "-c", "SIMPLECI='" + bin("simpleci") + "' SIMPLECI_DISPATCHER='" + c.endpoint() +
                                              "' git -C '" + work.dir().string() +
                                              "' push -q origin HEAD:main HEAD:refs/heads/feature 2>&1"});
  ASSERT_EQ(push.exit_code, 0) << push.output;
  EXPECT_FALSE(has(push.output, "could not notify")) << push.output;
  auto s = query_status(c.endpoint());
  ASSERT_TRUE(s);
  EXPECT_EQ(counter(*s, "observers.woken"), 1u) << "one push, one notify, one observer";
}

}  // namespace
}  // namespace simpleci::itest
