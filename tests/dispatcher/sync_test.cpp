// Replies that promise durability wait for the WAL flush of their round (a FakeSyncer holds and
// releases it); JOB and the other replies leave at the commit; rounds pipeline; a failed flush
// stops the dispatcher without sending what waited.
#include <filesystem>

#include "tests/dispatcher/fixture.h"

namespace simpleci::dispatcher {
namespace {

namespace fs = std::filesystem;
using msg::JobStatus;

// Records the rounds handed to it; the test says how far the disk got (or that it failed).
class FakeSyncer final : public Syncer {
 public:
  void committed(uint64_t seq) override { requested.push_back(seq); }
  int fd() const override { return -1; }
  bool durable(uint64_t* seq, std::string* err) override {
    *seq = done;
    if (!error.empty()) *err = error;
    return error.empty();
  }
  uint64_t last() const { return requested.empty() ? 0 : requested.back(); }

  std::vector<uint64_t> requested;
  uint64_t done = 0;
  std::string error;
};

class Synced : public DispatcherTest {
 protected:
  void SetUp() override {
    syncer_ = &fake_;
    DispatcherTest::SetUp();
  }
  // The disk caught up with every round committed so far (and the writer wrote their files).
  void flushed() {
    fake_.done = fake_.last();
    ASSERT_TRUE(d_->on_synced());
    d_->wait_files();
  }
  void commit_msg(const std::string& peer, int n, bool force = false) {
    deliver(peer, msg::Commit{static_cast<uint64_t>(n), commit_id(n), "main", force});
  }
  FakeSyncer fake_;
};

TEST_F(Synced, DurableRepliesWaitForTheFlushAndJobLeavesAtTheCommit) {
  add_runner("r1");  // WELCOME needs no flush (add_runner checks it came)
  commit_msg("obs", 1);
  ASSERT_EQ(fake_.requested, std::vector<uint64_t>{1});
  EXPECT_TRUE(out_.take<msg::Accepted>("obs").empty()) << "ACCEPTED before the WAL flush";
  auto jobs = out_.take<msg::Job>("r1");
  ASSERT_EQ(jobs.size(), 1u) << "JOB goes right after the commit";
  EXPECT_EQ(d_->unsynced_rounds(), 1u);
  flushed();
  auto acc = out_.take<msg::Accepted>("obs");
  ASSERT_EQ(acc.size(), 1u);
  EXPECT_EQ(acc[0].job_id, jobs[0].job_id);

  deliver("r1", result_for(jobs[0]));
  EXPECT_EQ(stored_status(jobs[0].job_id), JobStatus::kPassed) << "committed";
  EXPECT_TRUE(out_.take<msg::ResultAck>("r1").empty()) << "RESULT_ACK before the WAL flush";
  EXPECT_FALSE(fs::exists(cfg_.results_dir / commit_id(1))) << "files are a view of durable results";
  flushed();
  EXPECT_EQ(out_.take<msg::ResultAck>("r1").size(), 1u);
  EXPECT_TRUE(fs::exists(cfg_.results_dir / commit_id(1)));

  deliver("r1", msg::Drain{});  // r1 takes no more jobs: the next one stays queued
  commit_msg("obs", 2);
  flushed();
  const uint64_t queued = out_.take<msg::Accepted>("obs").at(0).job_id;
  deliver("obs", msg::CancelRequest{7, queued});
  EXPECT_TRUE(out_.take<msg::Ok>("obs").empty()) << "OK before the WAL flush";
  flushed();
  EXPECT_EQ(out_.take<msg::Ok>("obs").size(), 1u);
  EXPECT_EQ(d_->unsynced_rounds(), 0u);
}

TEST_F(Synced, RoundsPipelineAndEachWaitsForAFlushBegunAfterItsCommit) {
  add_runner("r1");
  commit_msg("obs", 1);  // round 1: insert + dispatch
  auto job = out_.take<msg::Job>("r1").at(0);
  deliver("r1", result_for(job));  // round 2 commits while round 1 is not flushed yet
  ASSERT_EQ(fake_.requested, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(stored_status(job.job_id), JobStatus::kPassed);
  EXPECT_EQ(d_->unsynced_rounds(), 2u);

  fake_.done = 1;  // a flush that began before round 2's commit covers round 1 only
  ASSERT_TRUE(d_->on_synced());
  EXPECT_EQ(out_.take<msg::Accepted>("obs").size(), 1u);
  EXPECT_TRUE(out_.take<msg::ResultAck>("r1").empty());

  // A round that commits nothing (a duplicate COMMIT, answered from memory) still waits for the
  // round before it, whose state its answer tells.
  commit_msg("obs", 1);
  EXPECT_EQ(fake_.requested.size(), 2u) << "nothing to commit, nothing to flush";
  EXPECT_TRUE(out_.take<msg::Accepted>("obs").empty());
  // So does an ERROR, which must not overtake the held replies to the same peer.
  deliver("obs", msg::RetryRequest{9, 424242});
  EXPECT_TRUE(out_.take<msg::Error>("obs").empty());

  fake_.done = 2;
  ASSERT_TRUE(d_->on_synced());
  EXPECT_EQ(out_.take<msg::ResultAck>("r1").size(), 1u);
  auto dup = out_.take<msg::Accepted>("obs");
  ASSERT_EQ(dup.size(), 1u);
  EXPECT_TRUE(dup[0].duplicate);
  EXPECT_EQ(out_.take<msg::Error>("obs").size(), 1u);
  EXPECT_EQ(d_->unsynced_rounds(), 0u);
}

TEST_F(Synced, AFailedFlushStopsTheDispatcherAndSendsNothingHeld) {
  add_runner("r1");
  commit_msg("obs", 1);
  auto job = out_.take<msg::Job>("r1").at(0);
  flushed();
  out_.take<msg::Accepted>("obs");
  deliver("r1", result_for(job));
  commit_msg("obs", 2);
  fake_.error = "fdatasync of the store's WAL failed: Input/output error";
  EXPECT_FALSE(d_->on_synced());
  EXPECT_TRUE(d_->sync_failed());
  EXPECT_EQ(d_->unsynced_rounds(), 0u);
  EXPECT_TRUE(out_.take<msg::ResultAck>("r1").empty());
  EXPECT_TRUE(out_.take<msg::Accepted>("obs").empty());
  EXPECT_FALSE(fs::exists(cfg_.results_dir / commit_id(1)));
  // Whatever the loop still does before it exits promises nothing either.
  commit_msg("obs", 3);
  EXPECT_TRUE(out_.take<msg::Accepted>("obs").empty());
  EXPECT_FALSE(d_->on_synced());
}

// A JOB leaves before its dispatch is flushed, so a power cut can lose the store's record of it.
// That is safe: the runner comes back holding a job the store has as queued, and is told to
// cancel it; a result for a job the store never kept is acknowledged as stale and not stored.
TEST_F(Synced, AJobWhoseDispatchWasLostIsCancelledWhenItsRunnerComesBack) {
  commit_msg("obs", 1);  // no runner yet: the job stays queued (as if its dispatch was lost)
  flushed();
  uint64_t id = out_.take<msg::Accepted>("obs").at(0).job_id;
  ASSERT_EQ(stored_status(id), JobStatus::kQueued);
  open();  // the dispatcher restarts on that store
  fake_ = FakeSyncer{};
  deliver("r1", msg::Register{"r1", 1, {id, id + 1000}});
  flushed();
  std::vector<uint64_t> cancelled;
  size_t cancel_at = 0, job_at = 0;
  for (size_t i = 0; i < out_.sent.size(); ++i) {
    const auto& m = out_.sent[i].second;
    if (auto* c = std::get_if<msg::CancelJob>(&m)) {
      cancelled.push_back(c->job_id);
      cancel_at = i;
    }
    if (std::holds_alternative<msg::Job>(m)) job_at = i;
  }
  EXPECT_EQ(cancelled, std::vector<uint64_t>{id}) << "the job the store does not have as running on r1";
  EXPECT_LT(cancel_at, job_at) << "cancelled before it is dispatched afresh";
  out_.sent.clear();
  // The result of a job the store never kept (its insert was lost too): stale, acked, not stored.
  deliver("r1", msg::Result{id + 1000, 1, JobStatus::kPassed, 0, 1, 2, false, "x"});
  flushed();
  EXPECT_EQ(out_.take<msg::ResultAck>("r1").size(), 1u);
  EXPECT_EQ(d_->counter("results.stale"), 1u);
  JobRow row;
  std::string err;
  EXPECT_EQ(store_->job(id + 1000, &row, &err), Lookup::kNotFound) << err;
}

}  // namespace
}  // namespace simpleci::dispatcher
