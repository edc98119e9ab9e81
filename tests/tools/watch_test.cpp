// WatchView: what `simpleci watch` shows of a series of WATCH_REPLYs.
#include <gtest/gtest.h>

#include "tools/client/session.h"
#include "tools/client/watch.h"

namespace simpleci::client {
namespace {

msg::WatchReply reply(uint32_t attempt, msg::JobStatus status, uint64_t offset, std::string data,
                      bool complete = false) {
  msg::WatchReply w;
  w.job_id = 7;
  w.attempt = attempt;
  w.status = status;
  w.runner = "r1";
  w.offset = offset;
  w.data = std::move(data);
  w.complete = complete;
  return w;
}

TEST(WatchTarget, AJobNumberOrACommit) {
  uint64_t job = 0;
  std::string commit;
  EXPECT_TRUE(parse_watch_target("12", &job, &commit));
  EXPECT_EQ(job, 12u);
  EXPECT_TRUE(parse_watch_target(std::string(40, 'B'), &job, &commit));
  EXPECT_EQ(commit, std::string(40, 'b'));
  EXPECT_FALSE(parse_watch_target("0", &job, &commit));
  EXPECT_FALSE(parse_watch_target("HEAD~1", &job, &commit));
  EXPECT_FALSE(parse_watch_target("", &job, &commit));
}

TEST(WatchView, ShowsEachByteOnceAndSaysWhatHappens) {
  WatchView v(7);
  auto s = v.take(reply(0, msg::JobStatus::kQueued, 0, ""));
  EXPECT_EQ(s.notes, std::vector<std::string>{"simpleci: job 7 queued"});
  s = v.take(reply(1, msg::JobStatus::kRunning, 0, "abc"));
  EXPECT_EQ(s.notes, std::vector<std::string>{"simpleci: job 7 running on r1 (attempt 1)"});
  EXPECT_EQ(s.output, "abc");
  EXPECT_EQ(v.next_request(5).offset, 3u);
  s = v.take(reply(1, msg::JobStatus::kRunning, 1, "bcde"));  // overlaps what was shown
  EXPECT_TRUE(s.notes.empty());
  EXPECT_EQ(s.output, "de");
  s = v.take(reply(1, msg::JobStatus::kFailed, 10, "xyz", true));  // bytes 5..9 were dropped
  EXPECT_EQ(s.notes, std::vector<std::string>{"simpleci: [5 bytes of output not kept]"});
  EXPECT_EQ(s.output, "xyz");
  EXPECT_TRUE(s.ended);
  EXPECT_EQ(s.exit_code, kJobNotPassed);
  EXPECT_EQ(s.summary, "simpleci: job 7 failed (exit 0, 0.0 s, runner r1, attempt 1)");
}

TEST(WatchView, ARestartStartsTheOutputAgain) {
  WatchView v(7);
  v.take(reply(1, msg::JobStatus::kRunning, 0, "first try"));
  auto s = v.take(reply(2, msg::JobStatus::kRunning, 0, "second"));
  EXPECT_EQ(s.notes.front(), "simpleci: job 7 restarted");
  EXPECT_EQ(s.output, "second");
  EXPECT_EQ(v.next_request(9).attempt, 2u);
  s = v.take(reply(2, msg::JobStatus::kPassed, 6, "", true));
  EXPECT_EQ(s.exit_code, 0);
}

}  // namespace
}  // namespace simpleci::client
