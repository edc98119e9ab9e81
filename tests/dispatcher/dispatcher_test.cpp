// The dispatcher's rules (PROTOCOL.md), driven with a FakeClock: no sleeping anywhere.
#include <fstream>

#include <nlohmann/json.hpp>

#include "tests/dispatcher/fixture.h"

namespace simpleci::dispatcher {
namespace {

using msg::JobStatus;

TEST_F(DispatcherTest, CommitIsAcceptedAndGoesToAnIdleRunner) {
  add_runner("r1");
  uint64_t id = submit("obs", 1);
  EXPECT_GE(id, 1u);
  auto jobs = out_.take<msg::Job>("r1");
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].job_id, id);
  EXPECT_EQ(jobs[0].attempt, 1u);
  EXPECT_EQ(jobs[0].commit, commit_id(1));
  EXPECT_EQ(jobs[0].test_command, cfg_.test_command);
}

TEST_F(DispatcherTest, SameCommitIsNotQueuedTwiceUnlessForcedAfterItFinished) {
  uint64_t id = submit("obs", 1);
  deliver("obs", msg::Commit{9, commit_id(1), "main", false});
  auto dup = out_.take<msg::Accepted>("obs");
  ASSERT_EQ(dup.size(), 1u);
  EXPECT_TRUE(dup[0].duplicate);
  EXPECT_EQ(dup[0].job_id, id);
  EXPECT_EQ(dup[0].request_id, 9u);
  EXPECT_EQ(d_->queue_length(), 1u);

  add_runner("r1");
  auto job = out_.take<msg::Job>("r1").at(0);
  deliver("r1", result_for(job));
  // Finished: a plain resend is still a duplicate, force queues a new job.
  deliver("obs", msg::Commit{10, commit_id(1), "main", false});
  EXPECT_TRUE(out_.take<msg::Accepted>("obs").at(0).duplicate);
  uint64_t again = submit("obs", 1, true);
  EXPECT_NE(again, id);
}

TEST_F(DispatcherTest, WorkSpreadsOverRunnersAndRespectsCapacity) {
  add_runner("r1");
  add_runner("r2", 2);
  for (int i = 1; i <= 4; ++i) submit("obs", i);
  EXPECT_EQ(out_.take<msg::Job>("r1").size(), 1u);
  EXPECT_EQ(out_.take<msg::Job>("r2").size(), 2u);
  EXPECT_EQ(d_->queue_length(), 1u);
}

TEST_F(DispatcherTest, OldestJobGoesFirst) {
  for (int i = 1; i <= 3; ++i) submit("obs", i);
  add_runner("r1");
  EXPECT_EQ(out_.take<msg::Job>("r1").at(0).commit, commit_id(1));
}

TEST_F(DispatcherTest, SilentRunnerIsDeadAfterThreeIntervalsAndItsJobGoesFirstWithAttemptTwo) {
  add_runner("r1");
  submit("obs", 1);
  submit("obs", 2);
  auto a = out_.take<msg::Job>("r1").at(0);
  advance(100);
  EXPECT_EQ(out_.take<msg::Heartbeat>("r1").size(), 1u);  // the dispatcher heartbeats too
  advance(150);
  EXPECT_EQ(d_->runner_count(), 1u);  // 250 ms of silence: still alive
  advance(60);
  EXPECT_EQ(d_->runner_count(), 0u);
  EXPECT_EQ(d_->counter("jobs.requeued"), 1u);
  add_runner("r2");
  auto again = out_.take<msg::Job>("r2").at(0);
  EXPECT_EQ(again.job_id, a.job_id);  // front of the queue, ahead of commit 2
  EXPECT_EQ(again.attempt, 2u);
}

TEST_F(DispatcherTest, HeartbeatsKeepABusyRunnerAlive) {
  add_runner("r1");
  submit("obs", 1);
  for (int i = 0; i < 20; ++i) {
    clock_.advance(Millis(90));
    deliver("r1", msg::Heartbeat{});
    d_->tick();
  }
  EXPECT_EQ(d_->runner_count(), 1u);
  EXPECT_EQ(d_->counter("jobs.requeued"), 0u);
}

TEST_F(DispatcherTest, ClosedConnectionRequeuesAtOnce) {
  deliver("r1", msg::Register{"r1", 1, {}}, 42);
  submit("obs", 1);
  d_->on_disconnect(41);
  EXPECT_EQ(d_->runner_count(), 1u);
  d_->on_disconnect(42);
  d_->flush();
  EXPECT_EQ(d_->runner_count(), 0u);
  EXPECT_EQ(d_->queue_length(), 1u);
}

TEST_F(DispatcherTest, JobLostMoreThanMaxAttemptsEndsAsError) {
  submit("obs", 1);
  for (int i = 0; i < 3; ++i) {
    add_runner("r1");
    ASSERT_EQ(out_.take<msg::Job>("r1").size(), 1u) << i;
    advance(400);
  }
  EXPECT_EQ(d_->queue_length(), 0u);
  std::ifstream in(cfg_.results_dir / (commit_id(1) + ".json"));
  auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j["status"], "error");
  EXPECT_EQ(j["attempt"], 3);
}

TEST_F(DispatcherTest, ResultIsStoredWrittenAndAcknowledged) {
  add_runner("r1");
  submit("obs", 1);
  auto job = out_.take<msg::Job>("r1").at(0);
  deliver("r1", result_for(job, JobStatus::kFailed));
  auto acks = out_.take<msg::ResultAck>("r1");
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].job_id, job.job_id);
  std::ifstream in(cfg_.results_dir / (commit_id(1) + ".json"));
  auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j["status"], "failed");
  EXPECT_EQ(j["exit_code"], 1);
  EXPECT_EQ(j["runner"], "r1");
  EXPECT_EQ(j["attempt"], 1);
  EXPECT_EQ(j["branch"], "main");
  EXPECT_EQ(j["duration_ms"], 5);
  std::ifstream out(cfg_.results_dir / commit_id(1));
  std::string text((std::istreambuf_iterator<char>(out)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "output of " + commit_id(1));
}

TEST_F(DispatcherTest, LateResultFromAGivenUpAttemptIsAckedCountedAndIgnored) {
  add_runner("r1");
  submit("obs", 1);
  auto first = out_.take<msg::Job>("r1").at(0);
  advance(400);  // r1 declared dead
  add_runner("r2");
  auto second = out_.take<msg::Job>("r2").at(0);
  ASSERT_EQ(second.attempt, 2u);
  add_runner("r1");  // back, without the job
  deliver("r1", result_for(first, JobStatus::kFailed));
  EXPECT_EQ(out_.take<msg::ResultAck>("r1").size(), 1u);
  EXPECT_EQ(d_->counter("results.stale"), 1u);
  EXPECT_FALSE(std::filesystem::exists(cfg_.results_dir / (commit_id(1) + ".json")));
  deliver("r2", result_for(second));
  std::ifstream in(cfg_.results_dir / (commit_id(1) + ".json"));
  EXPECT_EQ(nlohmann::json::parse(in)["status"], "passed");
}

TEST_F(DispatcherTest, RunnerThatComesBackKeepsTheJobsItHolds) {
  add_runner("r1", 2);
  submit("obs", 1);
  submit("obs", 2);
  auto jobs = out_.take<msg::Job>("r1");
  ASSERT_EQ(jobs.size(), 2u);
  // New connection (new routing id), holding only the first job.
  deliver("r1-new", msg::Register{"r1", 2, {jobs[0].job_id}});
  EXPECT_EQ(out_.take<msg::Welcome>("r1-new").size(), 1u);
  EXPECT_EQ(d_->counter("jobs.requeued"), 1u);
  // The second job was requeued and goes straight back to r1's free slot, as attempt 2.
  auto again = out_.take<msg::Job>("r1-new");
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].job_id, jobs[1].job_id);
  EXPECT_EQ(again[0].attempt, 2u);
  deliver("r1-new", result_for(jobs[0]));
  EXPECT_EQ(out_.take<msg::ResultAck>("r1-new").size(), 1u);
  EXPECT_EQ(d_->counter("results.stale"), 0u);
}

TEST_F(DispatcherTest, CancelAndRetry) {
  add_runner("r1");
  uint64_t running = submit("obs", 1);
  uint64_t queued = submit("obs", 2);
  ASSERT_EQ(out_.take<msg::Job>("r1").size(), 1u);
  deliver("cli", msg::CancelRequest{5, queued});
  EXPECT_EQ(out_.take<msg::Ok>("cli").size(), 1u);
  deliver("cli", msg::CancelRequest{6, running});
  EXPECT_EQ(out_.take<msg::Ok>("cli").size(), 1u);
  EXPECT_EQ(out_.take<msg::CancelJob>("r1").at(0).job_id, running);
  deliver("cli", msg::CancelRequest{7, running});
  EXPECT_EQ(out_.take<msg::Error>("cli").at(0).code, msg::ErrorCode::kInvalidState);
  deliver("cli", msg::CancelRequest{8, 999});
  EXPECT_EQ(out_.take<msg::Error>("cli").at(0).code, msg::ErrorCode::kNotFound);
  deliver("cli", msg::RetryRequest{9, running});
  auto ok = out_.take<msg::Ok>("cli");
  ASSERT_EQ(ok.size(), 1u);
  EXPECT_GT(ok[0].job_id, queued);
  EXPECT_EQ(out_.take<msg::Job>("r1").at(0).job_id, ok[0].job_id);
}

TEST_F(DispatcherTest, RunnerMessagesFromStrangersGetReregister) {
  deliver("ghost", msg::Heartbeat{});
  EXPECT_EQ(out_.take<msg::Reregister>("ghost").size(), 1u);
  EXPECT_EQ(d_->counter("rejected.unregistered"), 1u);
}

TEST_F(DispatcherTest, BadFramesAreCountedByReason) {
  std::string h = msg::header_frame();
  raw("x", {"only one"});
  raw("x", {"nope", msg::encode(msg::Heartbeat{})});
  raw("x", {h, std::string("\xdd\xff\xff\xff\xff", 5)});
  raw("x", {h, msg::encode(msg::Heartbeat{}) + "!"});
  raw("x", {h, msg::encode(msg::Welcome{100})});
  std::string v9 = h;
  v9[3] = 9;
  raw("x", {v9, msg::encode(msg::Heartbeat{})});
  EXPECT_EQ(d_->counter("rejected.frame_count"), 1u);
  EXPECT_EQ(d_->counter("rejected.bad_header"), 1u);
  EXPECT_EQ(d_->counter("rejected.malformed"), 1u);
  EXPECT_EQ(d_->counter("rejected.trailing_bytes"), 1u);
  EXPECT_EQ(d_->counter("rejected.unexpected_type"), 1u);
  EXPECT_EQ(d_->counter("rejected.version"), 1u);
  EXPECT_EQ(out_.take<msg::Error>("x").size(), 2u);  // unexpected type, version
}

TEST_F(DispatcherTest, AfterARestartQueuedJobsStayAndRunningJobsWaitForTheirRunner) {
  add_runner("r1");
  uint64_t running = submit("obs", 1);
  uint64_t queued = submit("obs", 2);
  ASSERT_EQ(out_.take<msg::Job>("r1").size(), 1u);
  open();  // the dispatcher restarts on the same store
  EXPECT_EQ(d_->queue_length(), 1u);
  deliver("r1b", msg::Register{"r1", 1, {running}});
  EXPECT_EQ(out_.take<msg::Welcome>("r1b").size(), 1u);
  EXPECT_EQ(out_.take<msg::CancelJob>("r1b").size(), 0u);
  msg::Job j{running, 1, commit_id(1), "main", "", 1, 1024};
  deliver("r1b", result_for(j));
  EXPECT_EQ(out_.take<msg::ResultAck>("r1b").size(), 1u);
  EXPECT_EQ(out_.take<msg::Job>("r1b").at(0).job_id, queued);
}

TEST_F(DispatcherTest, AfterARestartJobsOfRunnersThatNeverReturnAreRequeued) {
  add_runner("r1");
  uint64_t running = submit("obs", 1);
  open();
  advance(200);
  EXPECT_EQ(d_->queue_length(), 0u);
  advance(150);
  EXPECT_EQ(d_->queue_length(), 1u);
  add_runner("r2");
  auto j = out_.take<msg::Job>("r2").at(0);
  EXPECT_EQ(j.job_id, running);
  EXPECT_EQ(j.attempt, 2u);
}

TEST_F(DispatcherTest, StatusListsRunnersQueueRunningJobsAndCounters) {
  add_runner("r1");
  submit("obs", 1);
  submit("obs", 2);
  deliver("ghost", msg::Heartbeat{});
  deliver("cli", msg::StatusRequest{3});
  auto s = out_.take<msg::StatusReply>("cli").at(0);
  EXPECT_EQ(s.request_id, 3u);
  ASSERT_EQ(s.runners.size(), 1u);
  EXPECT_EQ(s.runners[0].state, "busy");
  EXPECT_EQ(s.queue_length, 1u);
  ASSERT_EQ(s.running.size(), 1u);
  bool counted = false;
  for (const auto& c : s.counters) counted |= c.name == "rejected.unregistered" && c.value == 1;
  EXPECT_TRUE(counted);
}

TEST_F(DispatcherTest, ResultsByCommitIncludeTheOutput) {
  add_runner("r1");
  submit("obs", 1);
  deliver("r1", result_for(out_.take<msg::Job>("r1").at(0)));
  deliver("cli", msg::ResultsRequest{4, commit_id(1), 10, true});
  auto r = out_.take<msg::ResultsReply>("cli").at(0);
  ASSERT_EQ(r.jobs.size(), 1u);
  EXPECT_EQ(r.jobs[0].status, JobStatus::kPassed);
  EXPECT_EQ(r.output, "output of " + commit_id(1));
}

TEST_F(DispatcherTest, RevokedKeyEndsTheRunnerAndIsRefusedFromThenOn) {
  cfg_.require_identity = true;
  open();
  d_->set_authorized({{"r1", Role::kAny}, {"r2", Role::kAny}, {"obs", Role::kAny}});
  auto from = [&](const std::string& peer, const std::string& key, const msg::Message& m) {
    std::string h = msg::header_frame(), b = msg::encode(m);
    std::vector<std::string_view> frames = {h, b};
    d_->on_message(peer, -1, frames, key);
    d_->flush();
  };
  from("r1", "r1", msg::Register{"r1", 1, {}});
  ASSERT_EQ(out_.take<msg::Welcome>("r1").size(), 1u);
  from("obs", "obs", msg::Commit{1, commit_id(1), "main", false});
  ASSERT_EQ(out_.take<msg::Accepted>("obs").size(), 1u);
  ASSERT_EQ(out_.take<msg::Job>("r1").size(), 1u);

  d_->set_authorized({{"r2", Role::kAny}, {"obs", Role::kAny}});  // r1's key was removed from the folder
  d_->flush();
  EXPECT_EQ(d_->runner_count(), 0u);
  EXPECT_EQ(d_->queue_length(), 1u) << "its job goes back to the queue at once";
  from("r1", "r1", msg::Heartbeat{});
  auto e = out_.take<msg::Error>("r1");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].code, msg::ErrorCode::kUnauthorized);
  from("r1", "r1", msg::Register{"r1", 1, {}});
  EXPECT_TRUE(out_.take<msg::Welcome>("r1").empty());
  EXPECT_EQ(d_->counter("rejected.unauthorized"), 2u);

  from("r2", "r2", msg::Register{"r2", 1, {}});
  EXPECT_EQ(out_.take<msg::Welcome>("r2").size(), 1u);
  EXPECT_EQ(out_.take<msg::Job>("r2").size(), 1u) << "a key added by the reload works";
}

msg::Result setup_failure(const msg::Job& j) {
  return msg::Result{j.job_id, j.attempt, JobStatus::kError, msg::kExitSetupFailed, 1, 2, false,
                     "simpleci: cannot fetch origin\n"};
}

TEST_F(DispatcherTest, JobThatCouldNotBeSetUpGoesToAnotherRunner) {
  add_runner("r1");
  add_runner("r2");
  submit("obs", 1);
  auto a = out_.take<msg::Job>("r1"), b = out_.take<msg::Job>("r2");
  ASSERT_EQ(a.size() + b.size(), 1u);
  const std::string first = a.empty() ? "r2" : "r1", other = a.empty() ? "r1" : "r2";
  const msg::Job j = a.empty() ? b[0] : a[0];
  deliver(first, setup_failure(j));
  EXPECT_EQ(out_.take<msg::ResultAck>(first).size(), 1u);
  EXPECT_TRUE(out_.take<msg::Job>(first).empty()) << "not back to the runner that failed it";
  auto again = out_.take<msg::Job>(other);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].attempt, 2u);
  EXPECT_EQ(d_->counter("jobs.setup_failed"), 1u);
  deliver(other, result_for(again[0]));
  JobRow r;
  std::string err;
  ASSERT_EQ(store_->job(j.job_id, &r, &err), Lookup::kFound) << err;
  EXPECT_EQ(r.summary.status, JobStatus::kPassed);
}

TEST_F(DispatcherTest, RunnerThatKeepsFailingSetupIsPausedThenTriedAgain) {
  add_runner("r1");
  for (int n = 1; n <= 2; ++n) {  // two jobs in a row fail on r1 (r2 is not there yet)
    submit("obs", n);
    deliver("r1", setup_failure(out_.take<msg::Job>("r1").at(0)));
  }
  // The second failure paused r1: the queued jobs wait; r1 shows as paused.
  EXPECT_TRUE(out_.take<msg::Job>("r1").empty());
  EXPECT_EQ(d_->queue_length(), 2u);
  deliver("cli", msg::StatusRequest{7});
  auto st = out_.take<msg::StatusReply>("cli").at(0);
  ASSERT_EQ(st.runners.size(), 1u);
  EXPECT_EQ(st.runners[0].state, "paused");
  add_runner("r2");  // a healthy runner takes the work meanwhile
  EXPECT_EQ(out_.take<msg::Job>("r2").size(), 1u);
  pass_time(29000, {"r1", "r2"});
  EXPECT_TRUE(out_.take<msg::Job>("r1").empty());
  pass_time(1100, {"r1", "r2"});
  auto later = out_.take<msg::Job>("r1");
  ASSERT_EQ(later.size(), 1u) << "the pause is over";
  deliver("r1", result_for(later[0]));  // a success clears its record
  submit("obs", 3);
  auto next = out_.take<msg::Job>("r1");
  ASSERT_EQ(next.size(), 1u);
  deliver("r1", setup_failure(next[0]));  // one failure after a success: no pause
  deliver("cli", msg::StatusRequest{8});
  EXPECT_NE(out_.take<msg::StatusReply>("cli").at(0).runners[0].state, "paused");
}

TEST_F(DispatcherTest, WithOneRunnerASetupFailureIsRetriedThenEndsAsError) {
  add_runner("r1");
  uint64_t id = submit("obs", 1);
  deliver("r1", setup_failure(out_.take<msg::Job>("r1").at(0)));
  auto second = out_.take<msg::Job>("r1");
  ASSERT_EQ(second.size(), 1u) << "the only runner gets it again";
  EXPECT_EQ(second[0].attempt, 2u);
  deliver("r1", setup_failure(second[0]));  // paused now
  pass_time(30100, {"r1"});
  auto third = out_.take<msg::Job>("r1");
  ASSERT_EQ(third.size(), 1u);
  EXPECT_EQ(third[0].attempt, 3u);
  deliver("r1", setup_failure(third[0]));
  JobRow r;
  std::string err;
  ASSERT_EQ(store_->job(id, &r, &err), Lookup::kFound) << err;
  EXPECT_EQ(r.summary.status, JobStatus::kError);
  EXPECT_EQ(r.summary.attempt, 3u);
  std::string out;
  ASSERT_TRUE(store_->output(id, &out, &err));
  EXPECT_EQ(out, "simpleci: cannot fetch origin\n") << "the runner's own words end the job";
}

TEST_F(DispatcherTest, UnwrittenOutputBytesAreCountedUntilTheFilesAreOnDisk) {
  add_runner("r1");
  submit("obs", 1);
  msg::Result res = result_for(out_.take<msg::Job>("r1").at(0));
  res.output = std::string(1 << 20, 'x');
  const std::string h = msg::header_frame(), b = msg::encode(res);
  const std::vector<std::string_view> frames = {h, b};
  d_->on_message("r1", -1, frames);
  d_->flush();  // without waiting for the writer
  EXPECT_EQ(d_->unwritten_bytes(), 1u << 20) << "counted until the main loop hears the files are written";
  d_->finish_writes();
  EXPECT_EQ(d_->unwritten_bytes(), 0u);
  EXPECT_EQ(d_->writer_backlog(), 0u);
  EXPECT_EQ(out_.take<msg::ResultAck>("r1").size(), 1u);
}

TEST_F(DispatcherTest, ResultsFolderRemovedWhileRunningIsMadeAgain) {
  add_runner("r1");
  submit("obs", 1);
  std::filesystem::remove_all(cfg_.results_dir);
  deliver("r1", result_for(out_.take<msg::Job>("r1").at(0)));
  EXPECT_TRUE(std::filesystem::exists(cfg_.results_dir / (commit_id(1) + ".json")));
  EXPECT_EQ(d_->counter("results.file_errors"), 0u);
}

}  // namespace
}  // namespace simpleci::dispatcher
