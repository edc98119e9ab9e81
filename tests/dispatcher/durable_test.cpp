// Results that survive and limits that hold: RESULT_ACK at the store's commit (not at the files),
// failed file writes retried, result files reconciled with the store at start, --max-queued,
// prune. All on a FakeClock.
#include <sys/stat.h>

#include <fstream>

#include <nlohmann/json.hpp>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include "tests/dispatcher/fixture.h"

namespace simpleci::dispatcher {
namespace {

namespace fs = std::filesystem;
using msg::JobStatus;
constexpr int64_t kDayMs = 24LL * 3600 * 1000;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

class Durable : public DispatcherTest {
 protected:
  // Runs commit n through runner r1 (registered by the caller) to a passed result.
  uint64_t run_job(int n, bool force = false) {
    uint64_t id = submit("obs", n, force);
    auto jobs = out_.take<msg::Job>("r1");
    EXPECT_EQ(jobs.size(), 1u);
    if (jobs.empty()) return 0;
    deliver("r1", result_for(jobs[0]));
    EXPECT_EQ(out_.take<msg::ResultAck>("r1").size(), 1u);
    return id;
  }
  // The results folder made unwritable: a regular file where the folder should be (the tests
  // may run as root, for whom permissions are no obstacle).
  void break_results_dir() {
    fs::remove_all(cfg_.results_dir);
    std::ofstream(cfg_.results_dir) << "not a folder";
  }
  void mend_results_dir() {
    fs::remove(cfg_.results_dir);
    fs::create_directories(cfg_.results_dir);
  }
  fs::path out_file(int n) { return cfg_.results_dir / commit_id(n); }
  fs::path json_file(int n) { return cfg_.results_dir / (commit_id(n) + ".json"); }
};

TEST_F(Durable, AFailedFileWriteIsRetriedAndTheAckDoesNotWaitForIt) {
  cfg_.async_files = false;  // the files are written on the loop, before the ACK leaves
  open();
  add_runner("r1");
  submit("obs", 1);
  auto job = out_.take<msg::Job>("r1").at(0);
  break_results_dir();
  deliver("r1", result_for(job));
  EXPECT_EQ(out_.take<msg::ResultAck>("r1").size(), 1u) << "the result is in the store: acked";
  EXPECT_EQ(d_->counter("results.file_errors"), 1u);
  EXPECT_EQ(d_->files_to_retry(), 1u);

  advance(300);  // first retry (after 250 ms) fails too: the folder is still a file
  EXPECT_EQ(d_->counter("results.file_errors"), 2u);
  EXPECT_EQ(d_->counter("results.file_retries"), 1u);
  mend_results_dir();
  advance(300);  // backoff doubled to 500 ms: not yet
  EXPECT_FALSE(fs::exists(json_file(1)));
  advance(300);
  EXPECT_EQ(d_->files_to_retry(), 0u);
  EXPECT_EQ(slurp(out_file(1)), "output of " + commit_id(1));
  auto j = nlohmann::json::parse(slurp(json_file(1)));
  EXPECT_EQ(j["status"], "passed");
  EXPECT_EQ(j["job_id"], job.job_id);
}

TEST_F(Durable, WithTheWriterThreadTheAckLeavesAtTheCommit) {
  add_runner("r1");
  submit("obs", 1);
  auto job = out_.take<msg::Job>("r1").at(0);
  break_results_dir();
  deliver("r1", result_for(job));
  EXPECT_EQ(out_.take<msg::ResultAck>("r1").size(), 1u) << "sent at the commit, before any file";
  d_->finish_writes();
  EXPECT_EQ(d_->counter("results.file_errors"), 1u);
  EXPECT_EQ(d_->files_to_retry(), 1u);
  mend_results_dir();
  advance(300);
  d_->finish_writes();
  EXPECT_EQ(d_->files_to_retry(), 0u);
  EXPECT_EQ(slurp(out_file(1)), "output of " + commit_id(1));
}

TEST_F(Durable, ANewerResultOfTheCommitReplacesAPendingRetry) {
  add_runner("r1");
  break_results_dir();
  run_job(1);
  EXPECT_EQ(d_->files_to_retry(), 1u);
  mend_results_dir();
  uint64_t second = run_job(1, true);
  EXPECT_EQ(d_->files_to_retry(), 0u);
  advance(1000);
  EXPECT_EQ(nlohmann::json::parse(slurp(json_file(1)))["job_id"], second);
  EXPECT_EQ(d_->counter("results.file_retries"), 0u);
}

TEST_F(Durable, AtStartFilesAreMadeToAgreeWithTheStore) {
  add_runner("r1");
  for (int n = 1; n <= 5; ++n) run_job(n);
  uint64_t newest = run_job(5, true);  // commit 5: two final jobs, the newer owns the files
  fs::remove(out_file(1));             // lost
  fs::remove(json_file(2));            // lost
  std::ofstream(out_file(3)) << "half";                       // short
  std::ofstream(json_file(4)) << R"({"status":"failed"})";   // different
  fs::remove(out_file(5));
  fs::remove(json_file(5));
  const fs::path temp1 = cfg_.results_dir / (commit_id(1) + ".tmp.123.456");
  const fs::path temp2 = cfg_.results_dir / (commit_id(2) + ".json.tmp.1.2");
  const fs::path foreign = cfg_.results_dir / "notes.tmp.txt";
  for (const auto& p : {temp1, temp2, foreign}) std::ofstream(p) << "x";

  open();  // a restart
  std::string err;
  ASSERT_TRUE(d_->reconcile_files(&err)) << err;
  EXPECT_EQ(d_->counter("results.rewritten"), 5u);
  for (int n = 1; n <= 5; ++n) {
    EXPECT_EQ(slurp(out_file(n)), "output of " + commit_id(n)) << n;
    EXPECT_EQ(nlohmann::json::parse(slurp(json_file(n)))["status"], "passed") << n;
  }
  EXPECT_EQ(nlohmann::json::parse(slurp(json_file(5)))["job_id"], newest);
  EXPECT_FALSE(fs::exists(temp1));
  EXPECT_FALSE(fs::exists(temp2));
  EXPECT_TRUE(fs::exists(foreign)) << "only leftovers of our own writes are removed";

  open();
  ASSERT_TRUE(d_->reconcile_files(&err)) << err;
  EXPECT_EQ(d_->counter("results.rewritten"), 0u) << "files that agree are left alone";
}

TEST_F(Durable, AFileTheStartUpPassCannotWriteIsRetriedLater) {
  add_runner("r1");
  run_job(1);
  break_results_dir();
  open();
  std::string err;
  ASSERT_TRUE(d_->reconcile_files(&err)) << err;
  EXPECT_EQ(d_->counter("results.file_errors"), 1u);
  EXPECT_EQ(d_->files_to_retry(), 1u);
  mend_results_dir();
  advance(300);
  EXPECT_EQ(d_->files_to_retry(), 0u);
  EXPECT_EQ(slurp(out_file(1)), "output of " + commit_id(1));
}

TEST_F(Durable, JobsAreLoggedAtDebugAndSummedUpAtInfoEveryTenSeconds) {
  auto ring = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(100);
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("test", ring));
  spdlog::set_level(spdlog::level::info);
  ring->set_pattern("%l %v");
  add_runner("r1");
  run_job(1);
  submit("obs", 2);  // goes to r1 and keeps running
  pass_time(5000, {"r1"});
  for (const auto& line : ring->last_formatted()) {
    EXPECT_EQ(line.find("job "), std::string::npos) << "per-job lines are debug: " << line;
  }
  pass_time(5000, {"r1"});
  auto lines = ring->last_formatted();
  spdlog::set_default_logger(previous);
  std::vector<std::string> summaries;
  for (const auto& line : lines) {
    if (line.find("last ") != std::string::npos) summaries.push_back(line);
  }
  ASSERT_EQ(summaries.size(), 1u);
  EXPECT_EQ(summaries[0], "info last 10 s: 2 queued, 1 finished (1 passed); 0 waiting, 1 running\n");
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("test", ring));
  pass_time(10000, {"r1"});
  spdlog::set_default_logger(previous);
  EXPECT_EQ(ring->last_formatted().size(), lines.size()) << "nothing happened: no summary";
}

TEST_F(Durable, CommitsPastMaxQueuedGetQueueFullAndAreNotStored) {
  cfg_.max_queued = 100;
  open();
  for (int n = 1; n <= 100; ++n) submit("obs", n);
  deliver("obs", msg::Commit{101, commit_id(101), "main", false});
  EXPECT_TRUE(out_.take<msg::Accepted>("obs").empty());
  auto errors = out_.take<msg::Error>("obs");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].code, msg::ErrorCode::kQueueFull);
  EXPECT_EQ(errors[0].request_id, 101u);
  EXPECT_EQ(errors[0].text, "100 jobs queued, the limit is 100");
  std::vector<msg::JobSummary> all;
  std::string err;
  ASSERT_TRUE(store_->recent("", 1000, false, "", &all, &err)) << err;
  EXPECT_EQ(all.size(), 100u) << "nothing past the limit is stored";
  EXPECT_EQ(d_->counter("jobs.refused_queue_full"), 1u);

  submit("obs", 7);  // a known commit is still answered
  add_runner("r1");  // takes one job: room for one more
  ASSERT_EQ(out_.take<msg::Job>("r1").size(), 1u);
  EXPECT_NE(submit("obs", 101), 0u);
}

TEST_F(Durable, PruneDropsOldOutputAndOnlyTheFilesThePrunedJobOwns) {
  add_runner("r1");
  uint64_t a = run_job(1);
  uint64_t b = run_job(2);
  clock_.advance(Millis(20 * kDayMs));
  deliver("r1", msg::Heartbeat{});
  uint64_t c = run_job(2, true);  // commit 2 tested again 20 days later: c owns its files
  clock_.advance(Millis(15 * kDayMs));

  EXPECT_EQ(d_->prune(30, 1000), 2u);  // a and b are 35 days old, c 15
  flush();
  EXPECT_FALSE(fs::exists(out_file(1)));
  EXPECT_FALSE(fs::exists(json_file(1)));
  EXPECT_EQ(nlohmann::json::parse(slurp(json_file(2)))["job_id"], c) << "c's files stay";
  std::string out, err;
  ASSERT_TRUE(store_->output(a, &out, &err));
  EXPECT_EQ(out, "");
  ASSERT_TRUE(store_->output(c, &out, &err));
  EXPECT_EQ(out, "output of " + commit_id(2));
  JobRow row;
  ASSERT_EQ(store_->job(b, &row, &err), Lookup::kFound) << "the history stays";
  EXPECT_TRUE(row.pruned);
  EXPECT_EQ(row.summary.status, JobStatus::kPassed);

  open();
  ASSERT_TRUE(d_->reconcile_files(&err)) << err;
  EXPECT_FALSE(fs::exists(json_file(1))) << "a pruned job's files are not written again";
  EXPECT_EQ(d_->prune(30, 1000), 0u);
}

TEST_F(Durable, PruneAfterDaysRunsHourlyInBoundedBatches) {
  cfg_.prune_after_days = 1;
  open();
  add_runner("r1");
  for (int n = 1; n <= 250; ++n) run_job(n);
  clock_.advance(Millis(60 * 1000));
  run_job(251);  // a minute younger than the others
  clock_.advance(Millis(kDayMs + 30 * 1000 - 60 * 1000));
  advance(10);  // the first pass (due at start) prunes one batch per tick
  EXPECT_EQ(d_->counter("jobs.pruned"), 100u);
  advance(10);
  EXPECT_EQ(d_->counter("jobs.pruned"), 200u);
  advance(10);
  EXPECT_EQ(d_->counter("jobs.pruned"), 250u) << "job 251 is not a day old yet";
  EXPECT_FALSE(fs::exists(json_file(250)));
  EXPECT_TRUE(fs::exists(json_file(251)));

  advance(60 * 1000);
  EXPECT_EQ(d_->counter("jobs.pruned"), 250u) << "the next pass is an hour after the last";
  advance(3600 * 1000);
  EXPECT_EQ(d_->counter("jobs.pruned"), 251u);
  EXPECT_FALSE(fs::exists(json_file(251)));
}

}  // namespace
}  // namespace simpleci::dispatcher
