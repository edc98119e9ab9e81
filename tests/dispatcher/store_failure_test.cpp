// The Dispatcher when its store fails, through a FaultyStore: a commit that fails loses the round
// (state reloaded from the store, ACCEPTED/OK turned into ERROR storage_failure, RESULT_ACK and
// JOB not sent), and a read that fails is never taken for "not found" (no duplicate job; cancel,
// retry, watch and results answer storage_failure, not not_found).
#include "tests/dispatcher/faulty_store.h"
#include "tests/dispatcher/fixture.h"

namespace simpleci::dispatcher {
namespace {

using msg::ErrorCode;
using msg::JobStatus;

class StoreFailure : public DispatcherTest {
 protected:
  JobStore& dispatcher_store() override {
    faulty_.real = store_.get();
    return faulty_;
  }
  // Delivers m and ends the round; returns what flush() said.
  bool round(const std::string& peer, const msg::Message& m) {
    const std::string h = msg::header_frame(), b = msg::encode(m);
    const std::vector<std::string_view> frames = {h, b};
    d_->on_message(peer, -1, frames);
    const bool ok = d_->flush();
    d_->wait_files();
    return ok;
  }
  // The one ERROR peer got; its code.
  ErrorCode error_code(const std::string& peer) {
    auto e = out_.take<msg::Error>(peer);
    EXPECT_EQ(e.size(), 1u);
    return e.empty() ? ErrorCode::kBadRequest : e[0].code;
  }
  FaultyStore faulty_;
};

TEST_F(StoreFailure, AFailedCommitAnswersStorageFailureAndSendsNoJob) {
  add_runner("r1");
  faulty_.fail_commit = true;
  EXPECT_FALSE(round("obs", msg::Commit{7, commit_id(1), "main", false}));
  EXPECT_EQ(error_code("obs"), ErrorCode::kStorageFailure);
  EXPECT_TRUE(out_.take<msg::Accepted>("obs").empty());
  EXPECT_TRUE(out_.take<msg::Job>("r1").empty()) << "the dispatch was rolled back with the job";
  EXPECT_EQ(d_->queue_length(), 0u) << "the state is the store's again";
  EXPECT_EQ(d_->running_count(), 0u);
  EXPECT_EQ(d_->counter("store.failures"), 1u);

  faulty_.fail_commit = false;  // the requester retries, and it works
  EXPECT_NE(submit("obs", 1), 0u);
  EXPECT_EQ(out_.take<msg::Job>("r1").size(), 1u);
}

TEST_F(StoreFailure, AResultWhoseCommitFailsIsNotAcknowledgedAndTheJobStaysRunning) {
  add_runner("r1");
  const uint64_t id = submit("obs", 1);
  const msg::Job job = out_.take<msg::Job>("r1").at(0);
  faulty_.fail_commit = true;
  EXPECT_FALSE(round("r1", result_for(job)));
  EXPECT_TRUE(out_.take<msg::ResultAck>("r1").empty()) << "the runner keeps its copy and re-sends";
  EXPECT_EQ(d_->running_count(), 1u);
  EXPECT_EQ(stored_status(id), JobStatus::kRunning);
  EXPECT_FALSE(std::filesystem::exists(cfg_.results_dir / (commit_id(1) + ".json")));

  faulty_.fail_commit = false;
  EXPECT_TRUE(round("r1", result_for(job)));
  EXPECT_EQ(out_.take<msg::ResultAck>("r1").size(), 1u);
  EXPECT_EQ(stored_status(id), JobStatus::kPassed);
  EXPECT_TRUE(std::filesystem::exists(cfg_.results_dir / (commit_id(1) + ".json")));
}

TEST_F(StoreFailure, AFailedCommitTurnsOkIntoStorageFailureAndKeepsTheJob) {
  const uint64_t id = submit("obs", 1);  // no runner: it stays queued
  faulty_.fail_commit = true;
  EXPECT_FALSE(round("cli", msg::CancelRequest{3, id}));
  EXPECT_EQ(error_code("cli"), ErrorCode::kStorageFailure);
  EXPECT_TRUE(out_.take<msg::Ok>("cli").empty());
  EXPECT_EQ(d_->queue_length(), 1u) << "the cancel was rolled back";
  EXPECT_EQ(stored_status(id), JobStatus::kQueued);
}

TEST_F(StoreFailure, AReadFailureNeverQueuesACommitTwice) {
  add_runner("r1");
  const msg::Job job = [&] {
    submit("obs", 1);
    return out_.take<msg::Job>("r1").at(0);
  }();
  deliver("r1", result_for(job));  // commit 1 has a final job now
  faulty_.fail_reads = true;
  EXPECT_TRUE(round("obs", msg::Commit{8, commit_id(1), "main", false}));
  EXPECT_EQ(error_code("obs"), ErrorCode::kStorageFailure);
  EXPECT_EQ(d_->queue_length() + d_->running_count(), 0u) << "no duplicate job";
  EXPECT_EQ(d_->counter("store.failures"), 1u);

  faulty_.fail_reads = false;
  deliver("obs", msg::Commit{9, commit_id(1), "main", false});
  auto acc = out_.take<msg::Accepted>("obs");
  ASSERT_EQ(acc.size(), 1u);
  EXPECT_EQ(acc[0].job_id, job.job_id);
  EXPECT_TRUE(acc[0].duplicate);
}

TEST_F(StoreFailure, RequestsAboutJobsTheStoreCannotReadGetStorageFailureNotNotFound) {
  faulty_.fail_reads = true;
  deliver("cli", msg::CancelRequest{1, 42});
  EXPECT_EQ(error_code("cli"), ErrorCode::kStorageFailure);
  deliver("cli", msg::RetryRequest{2, 42});
  EXPECT_EQ(error_code("cli"), ErrorCode::kStorageFailure);
  deliver("cli", msg::WatchRequest{3, 42, 0, 0});
  EXPECT_EQ(error_code("cli"), ErrorCode::kStorageFailure);
  deliver("cli", msg::ResultsRequest{4, commit_id(1), 5, true});
  EXPECT_EQ(error_code("cli"), ErrorCode::kStorageFailure);
  EXPECT_EQ(d_->counter("store.failures"), 4u);

  faulty_.fail_reads = false;  // the same requests about a job that does not exist
  deliver("cli", msg::CancelRequest{5, 42});
  EXPECT_EQ(error_code("cli"), ErrorCode::kNotFound);
  deliver("cli", msg::WatchRequest{6, 42, 0, 0});
  EXPECT_EQ(error_code("cli"), ErrorCode::kNotFound);
}

TEST_F(StoreFailure, TheOutputOfAFinishedJobThatCannotBeReadIsNotSentAsEmpty) {
  add_runner("r1");
  submit("obs", 1);
  deliver("r1", result_for(out_.take<msg::Job>("r1").at(0)));
  faulty_.fail_reads = true;
  deliver("cli", msg::ResultsRequest{4, commit_id(1), 5, true});
  EXPECT_EQ(error_code("cli"), ErrorCode::kStorageFailure);
  EXPECT_TRUE(out_.take<msg::ResultsReply>("cli").empty());
}

}  // namespace
}  // namespace simpleci::dispatcher
