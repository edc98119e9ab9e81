// STATUS, REGISTER and tick read the running jobs kept beside the queue (never the queue itself):
// these tests check that what they keep stays right through every change a job goes through,
// and that a peer gets one output-carrying reply at a time.
#include <set>

#include "tests/dispatcher/fixture.h"

namespace simpleci::dispatcher {
namespace {

class StatusCostTest : public DispatcherTest {
 protected:
  msg::StatusReply status() {
    deliver("cli", msg::StatusRequest{++request_});
    auto replies = out_.take<msg::StatusReply>("cli");
    EXPECT_EQ(replies.size(), 1u);
    return replies.empty() ? msg::StatusReply{} : replies[0];
  }
  // Running job ids as STATUS lists them, checked against each runner's own list.
  std::set<uint64_t> running() {
    const msg::StatusReply s = status();
    std::set<uint64_t> ids, by_runner;
    for (const auto& j : s.running) {
      EXPECT_EQ(j.status, msg::JobStatus::kRunning);
      ids.insert(j.job_id);
    }
    for (const auto& r : s.runners) by_runner.insert(r.jobs.begin(), r.jobs.end());
    EXPECT_TRUE(std::includes(ids.begin(), ids.end(), by_runner.begin(), by_runner.end()));
    EXPECT_EQ(ids.size(), d_->running_count());
    queue_ = s.queue_length;
    return ids;
  }
  uint64_t request_ = 0;
  uint64_t queue_ = 0;
};

TEST_F(StatusCostTest, RunningJobsAndQueueLengthFollowEveryTransition) {
  add_runner("r1", 2);
  add_runner("r2", 1);
  std::vector<uint64_t> id;
  for (int n = 1; n <= 6; ++n) id.push_back(submit("obs", n));
  auto j1 = out_.take<msg::Job>("r1");
  auto j2 = out_.take<msg::Job>("r2");
  ASSERT_EQ(j1.size() + j2.size(), 3u);
  EXPECT_EQ(running(), (std::set<uint64_t>{id[0], id[1], id[2]}));
  EXPECT_EQ(queue_, 3u);

  // finish: the next queued job takes the slot
  std::set<uint64_t> expect = {id[0], id[1], id[2]};
  deliver("r2", result_for(j2.at(0)));
  expect.erase(j2[0].job_id);
  expect.insert(id[3]);
  EXPECT_EQ(running(), expect);
  EXPECT_EQ(queue_, 2u);

  // cancel a queued job and a running one
  deliver("cli", msg::CancelRequest{100, id[5]});
  deliver("cli", msg::CancelRequest{101, j1.at(0).job_id});
  EXPECT_EQ(out_.take<msg::Ok>("cli").size(), 2u);
  expect.erase(j1[0].job_id);
  expect.insert(id[4]);
  EXPECT_EQ(running(), expect);
  EXPECT_EQ(queue_, 0u);

  // requeue: r1 goes silent; its jobs go back to the queue, r2 takes one when free
  pass_time(350, {"r2"});
  EXPECT_EQ(d_->runner_count(), 1u);
  const std::set<uint64_t> left = running();
  EXPECT_EQ(left.size(), 1u);
  EXPECT_EQ(queue_, 2u);
  EXPECT_EQ(d_->counter("jobs.requeued"), 2u);
}

TEST_F(StatusCostTest, AfterARestartEachRunnerFindsItsOwnRunningJobs) {
  add_runner("r1");
  add_runner("r2");
  const uint64_t a = submit("obs", 1);
  const uint64_t b = submit("obs", 2);
  const uint64_t c = submit("obs", 3);  // stays queued
  const uint64_t on_r1 = out_.take<msg::Job>("r1").at(0).job_id;
  out_.take<msg::Job>("r2");
  const uint64_t on_r2 = on_r1 == a ? b : a;
  open();  // restart: both running jobs wait for their runners
  EXPECT_EQ(running(), (std::set<uint64_t>{a, b}));
  EXPECT_EQ(queue_, 1u);
  // r1 comes back holding its job: it keeps it; r2's job stays untouched.
  deliver("r1b", msg::Register{"r1", 1, {on_r1}});
  EXPECT_EQ(out_.take<msg::Welcome>("r1b").size(), 1u);
  EXPECT_EQ(d_->counter("jobs.requeued"), 0u);
  // r2 comes back holding nothing: its job is requeued (to the front) and goes to r2 again.
  deliver("r2b", msg::Register{"r2", 1, {}});
  EXPECT_EQ(d_->counter("jobs.requeued"), 1u);
  auto again = out_.take<msg::Job>("r2b");
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].job_id, on_r2);
  EXPECT_EQ(again[0].attempt, 2u);
  // Nothing is left waiting: the restart deadline passes without another requeue.
  pass_time(400, {"r1b", "r2b"});
  EXPECT_EQ(d_->counter("jobs.requeued"), 1u);
  EXPECT_EQ(running(), (std::set<uint64_t>{a, b}));
  EXPECT_EQ(queue_, 1u);
  (void)c;
}

TEST_F(StatusCostTest, AJobCancelledWhileWaitingForItsRunnerIsForgotten) {
  add_runner("r1");
  const uint64_t a = submit("obs", 1);
  out_.take<msg::Job>("r1");
  open();
  deliver("cli", msg::CancelRequest{1, a});
  EXPECT_EQ(out_.take<msg::Ok>("cli").size(), 1u);
  EXPECT_TRUE(running().empty());
  // The runner returns holding it: nothing to keep, nothing to requeue.
  deliver("r1b", msg::Register{"r1", 1, {a}});
  EXPECT_EQ(d_->counter("jobs.requeued"), 0u);
  pass_time(400, {"r1b"});
  EXPECT_EQ(d_->counter("jobs.requeued"), 0u);
  EXPECT_TRUE(running().empty());
}

TEST_F(StatusCostTest, StatusListsTheLowestThousandRunningJobs) {
  for (int r = 0; r < 5; ++r) add_runner("r" + std::to_string(r), 256);
  for (int n = 1; n <= 1100; ++n) submit("obs", n);
  EXPECT_EQ(d_->running_count(), 1100u);
  const msg::StatusReply s = status();
  ASSERT_EQ(s.running.size(), msg::kMaxListLen);
  for (size_t i = 0; i < s.running.size(); ++i) EXPECT_EQ(s.running[i].job_id, i + 1);
}

// An outbox whose transport still holds an output reply for "slow".
class BusyOutbox : public RecordingOutbox {
 public:
  bool output_in_flight(std::string_view peer) const override { return peer == "slow"; }
};

TEST_F(StatusCostTest, OneOutputReplyPerPeerAtATime) {
  add_runner("r1");
  const uint64_t a = submit("obs", 1);
  deliver("r1", result_for(out_.take<msg::Job>("r1").at(0)));
  // Two requests for output in one round: the second is refused before reading any output.
  std::string h = msg::header_frame();
  std::string w1 = msg::encode(msg::WatchRequest{1, a, 0, 0});
  std::string w2 = msg::encode(msg::WatchRequest{2, a, 0, 0});
  std::vector<std::string_view> f1 = {h, w1}, f2 = {h, w2};
  d_->on_message("cli", -1, f1);
  d_->on_message("cli", -1, f2);
  d_->on_message("other", -1, f2);
  d_->flush();
  EXPECT_EQ(out_.take<msg::WatchReply>("cli").size(), 1u);
  auto busy = out_.take<msg::Error>("cli");
  ASSERT_EQ(busy.size(), 1u);
  EXPECT_EQ(busy[0].request_id, 2u);
  EXPECT_EQ(busy[0].code, msg::ErrorCode::kBusy);
  EXPECT_EQ(out_.take<msg::WatchReply>("other").size(), 1u);  // other peers are not affected
  // The next round the first reply is gone: output is served again.
  deliver("cli", msg::WatchRequest{3, a, 0, 0});
  EXPECT_EQ(out_.take<msg::WatchReply>("cli").size(), 1u);
  EXPECT_EQ(d_->counter("send.over_budget"), 1u);
}

TEST_F(StatusCostTest, OutputIsRefusedWhileTheTransportHoldsThePreviousOne) {
  BusyOutbox busy_out;
  Dispatcher d(clock_, *store_, busy_out, cfg_);
  std::string err;
  ASSERT_TRUE(d.recover(&err)) << err;
  std::string h = msg::header_frame();
  std::string body = msg::encode(msg::ResultsRequest{4, commit_id(1), 1, true});
  std::string commit = msg::encode(msg::Commit{5, commit_id(1), "main", false});
  std::vector<std::string_view> q = {h, body}, c = {h, commit};
  d.on_message("obs", -1, c);
  d.on_message("slow", -1, q);
  d.flush();
  // The job is queued (not final): no output would be read, so the reply goes out.
  EXPECT_EQ(busy_out.take<msg::ResultsReply>("slow").size(), 1u);
  std::string cancel = msg::encode(msg::CancelRequest{6, 1});
  std::vector<std::string_view> x = {h, cancel};
  d.on_message("obs", -1, x);
  d.on_message("slow", -1, q);
  d.on_message("fast", -1, q);
  d.flush();
  auto e = busy_out.take<msg::Error>("slow");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].code, msg::ErrorCode::kBusy);
  auto fast = busy_out.take<msg::ResultsReply>("fast");
  ASSERT_EQ(fast.size(), 1u);
  EXPECT_FALSE(fast[0].output.empty());
}

}  // namespace
}  // namespace simpleci::dispatcher
