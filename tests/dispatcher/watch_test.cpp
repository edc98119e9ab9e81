// WATCH: a job's output followed live from the runner's OUTPUT chunks, then from the store.
#include "tests/dispatcher/fixture.h"

namespace simpleci::dispatcher {
namespace {

using msg::JobStatus;

class WatchTest : public DispatcherTest {
 protected:
  msg::WatchReply watch(uint64_t job, uint32_t attempt, uint64_t offset) {
    deliver("cli", msg::WatchRequest{++request_, job, attempt, offset});
    auto r = out_.take<msg::WatchReply>("cli");
    EXPECT_EQ(r.size(), 1u);
    if (r.empty()) return {};
    EXPECT_EQ(r[0].request_id, request_);
    return r[0];
  }
  void output(const std::string& runner, const msg::Job& j, uint64_t offset, const std::string& data) {
    deliver(runner, msg::Output{j.job_id, j.attempt, offset, data});
  }
  uint64_t request_ = 0;
};

TEST_F(WatchTest, QueuedThenLiveThenTheStoredRest) {
  uint64_t id = submit("obs", 1);
  msg::WatchReply q = watch(id, 0, 0);
  EXPECT_EQ(q.status, JobStatus::kQueued);
  EXPECT_EQ(q.attempt, 0u);
  EXPECT_TRUE(q.data.empty());
  EXPECT_FALSE(q.complete);

  add_runner("r1");
  msg::Job j = out_.take<msg::Job>("r1").at(0);
  output("r1", j, 0, "hello ");
  output("r1", j, 6, "world\n");
  output("r1", j, 0, "hello ");  // a resend after a reconnect adds nothing
  msg::WatchReply a = watch(id, 0, 0);
  EXPECT_EQ(a.status, JobStatus::kRunning);
  EXPECT_EQ(a.attempt, 1u);
  EXPECT_EQ(a.runner, "r1");
  EXPECT_EQ(a.offset, 0u);
  EXPECT_EQ(a.data, "hello world\n");
  EXPECT_FALSE(a.complete);
  msg::WatchReply b = watch(id, 1, 6);
  EXPECT_EQ(b.offset, 6u);
  EXPECT_EQ(b.data, "world\n");
  EXPECT_TRUE(watch(id, 1, 12).data.empty());

  msg::Result res = result_for(j, JobStatus::kFailed);
  res.output = "hello world\nbye\n";
  deliver("r1", res);
  msg::WatchReply c = watch(id, 1, 12);
  EXPECT_EQ(c.status, JobStatus::kFailed);
  EXPECT_EQ(c.exit_code, 1);
  EXPECT_EQ(c.offset, 12u);
  EXPECT_EQ(c.data, "bye\n");
  EXPECT_TRUE(c.complete);
  msg::WatchReply all = watch(id, 0, 0);  // a finished job from the start
  EXPECT_EQ(all.data, res.output);
  EXPECT_TRUE(all.complete);
  msg::WatchReply past = watch(id, 1, 1000);
  EXPECT_EQ(past.offset, res.output.size());
  EXPECT_TRUE(past.data.empty());
  EXPECT_TRUE(past.complete);
}

TEST_F(WatchTest, OnlyTheNewestBytesAreKeptAndGapsAreShown) {
  cfg_.live_window = 8;
  open();
  add_runner("r1");
  uint64_t id = submit("obs", 1);
  msg::Job j = out_.take<msg::Job>("r1").at(0);
  std::string all;
  for (char c = 'a'; c <= 'z'; ++c) {
    output("r1", j, all.size(), std::string(3, c));
    all += std::string(3, c);
  }
  msg::WatchReply w = watch(id, 1, 0);
  EXPECT_GT(w.offset, 0u) << "the start is no longer kept: the reply says where its bytes begin";
  EXPECT_GE(w.data.size(), 8u);
  EXPECT_LE(w.data.size(), 16u);
  EXPECT_EQ(w.offset + w.data.size(), all.size());
  EXPECT_EQ(w.data, all.substr(w.offset));

  output("r1", j, all.size() + 100, "after a gap");
  msg::WatchReply g = watch(id, 1, all.size());
  EXPECT_EQ(g.offset, all.size() + 100);
  EXPECT_EQ(g.data, "after a gap");
}

TEST_F(WatchTest, ARestartedJobStartsAgainAndStaleChunksAreDropped) {
  deliver("r1", msg::Register{"r1", 1, {}}, 7);
  out_.take<msg::Welcome>("r1");
  uint64_t id = submit("obs", 1);
  msg::Job first = out_.take<msg::Job>("r1").at(0);
  output("r1", first, 0, "first attempt\n");
  d_->on_disconnect(7);
  d_->flush();
  msg::WatchReply q = watch(id, 1, 14);
  EXPECT_EQ(q.status, JobStatus::kQueued);
  EXPECT_TRUE(q.data.empty());

  add_runner("r2");
  msg::Job second = out_.take<msg::Job>("r2").at(0);
  ASSERT_EQ(second.attempt, 2u);
  output("r2", second, 0, "second\n");
  add_runner("r1");  // back, and still sending its old attempt's output
  output("r1", first, 14, "late\n");
  EXPECT_EQ(d_->counter("output.stale"), 1u);
  msg::WatchReply w = watch(id, 1, 14);
  EXPECT_EQ(w.attempt, 2u);
  EXPECT_EQ(w.runner, "r2");
  EXPECT_EQ(w.offset, 0u) << "another attempt: its output from the beginning";
  EXPECT_EQ(w.data, "second\n");
}

TEST_F(WatchTest, UnknownJobIsAnError) {
  deliver("cli", msg::WatchRequest{9, 1234, 0, 0});
  auto e = out_.take<msg::Error>("cli");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].request_id, 9u);
  EXPECT_EQ(e[0].code, msg::ErrorCode::kNotFound);
}

}  // namespace
}  // namespace simpleci::dispatcher
