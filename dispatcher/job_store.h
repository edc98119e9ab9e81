// JobStore: what the dispatcher needs of its durable job store, as an interface. The SQLite
// Store (store.h) implements it; tests wrap a Store to make one call fail (a commit, a read), as
// leveldb's ErrorEnv does, so every failure branch has a unit test without root or a full disk.
//
// Transactions: every write happens inside a transaction the caller opens with begin() and
// closes with commit() (or rollback()). Errors are values: a call returns false (0 for an id) and
// fills *err; nothing throws. Reads tell "not found" from "could not read" (Lookup): a read
// failure never passes for absence. Not thread-safe: one thread owns a store.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "messages/messages.h"

namespace simpleci::dispatcher {

// One job row. status/attempt/runner describe the newest attempt.
struct JobRow {
  msg::JobSummary summary;
  int64_t queue_pos = 0;  // order among queued jobs: smaller runs first
  bool pruned = false;    // its output was dropped by prune(); its files are not rewritten
  uint32_t timeout_s = 0;  // the job's own timeout (its settings line); 0: the dispatcher's
};

// A final job whose output prune() dropped.
struct PrunedJob {
  uint64_t job_id = 0;
  std::string commit;
  // True when this job is its commit's newest final job, so test_results/<commit> and
  // <commit>.json are its files and go with it; false when a newer job's files hold that name.
  bool owns_files = false;
  std::string repo{};      // "": the unnamed repository
  std::string job_name{};  // "": the commit's one job
};

// What reconcile needs to know of a final job without loading its output.
struct FinalJob {
  msg::JobSummary summary;
  uint64_t output_bytes = 0;
};

// Which jobs JobStore::jobs() lists (JOBS_REQUEST).
struct JobFilter {
  std::string branch;          // empty: every branch
  uint32_t statuses = 0;       // bit (1 << JobStatus) per status; 0: every status
  uint32_t limit = 20;
  uint64_t before_job_id = 0;  // only lower ids; 0: from the newest
  bool by_repo = false;        // only the jobs of `repo` ("" is the unnamed repository)
  std::string repo{};
};

// The outcome of a read of one row.
enum class Lookup {
  kFound,     // the row was read
  kNotFound,  // the store was read and holds no such row
  kError,     // the store could not be read (*err filled): the row may exist
};

class JobStore {
 public:
  virtual ~JobStore() = default;

  virtual bool begin(std::string* err) = 0;
  // Ends the transaction; a failed commit has rolled it back.
  virtual bool commit(std::string* err) = 0;
  virtual void rollback() = 0;
  virtual bool in_transaction() const = 0;

  // A new queued job at the back of the queue, from s's commit, branch, repo, job_name, labels
  // and created_at_ms; timeout_s 0 is the dispatcher's default. Returns its id (0 on failure).
  virtual uint64_t insert(const msg::JobSummary& s, uint32_t timeout_s, std::string* err) = 0;
  // The original flow's job: the unnamed job of the unnamed repository.
  uint64_t insert_job(const std::string& commit, const std::string& branch, int64_t created_ms,
                      std::string* err) {
    msg::JobSummary s;
    s.commit = commit;
    s.branch = branch;
    s.created_at_ms = created_ms;
    return insert(s, 0, err);
  }
  virtual bool mark_running(uint64_t id, uint32_t attempt, const std::string& runner,
                            int64_t started_ms, std::string* err) = 0;
  // Back to queued (runner cleared) at queue position pos, keeping attempt as the last one run.
  virtual bool requeue(uint64_t id, int64_t pos, std::string* err) = 0;
  // Final state of a job, with its output.
  virtual bool finish(const msg::JobSummary& s, const std::string& output, std::string* err) = 0;

  // Calls fn for every queued or running job, queued ones in queue order, one row at a time (a
  // queue of a million jobs is never held as rows). fn returns false to stop early.
  virtual bool for_each_active(const std::function<bool(const JobRow&)>& fn, std::string* err) = 0;
  // Every queued or running job, queued ones in queue order.
  bool load_active(std::vector<JobRow>* out, std::string* err) {
    out->clear();
    return for_each_active([out](const JobRow& r) { out->push_back(r); return true; }, err);
  }
  // The job with this id.
  virtual Lookup job(uint64_t id, JobRow* row, std::string* err) = 0;
  // The newest job for a commit of a repository (any of its jobs).
  virtual Lookup latest_for_commit(const std::string& repo, const std::string& commit, JobRow* row,
                                   std::string* err) = 0;
  // Newest jobs overall (commit empty) or of one commit, newest first; with by_repo only those
  // of `repo`.
  virtual bool recent(const std::string& commit, uint32_t limit, bool by_repo, const std::string& repo,
                      std::vector<msg::JobSummary>* out, std::string* err) = 0;
  // Jobs that pass the filter, newest (highest id) first, at most f.limit of them.
  virtual bool jobs(const JobFilter& f, std::vector<msg::JobSummary>* out, std::string* err) = 0;
  // At most `max` bytes of a job's output from byte `offset` (empty for an unknown or unfinished
  // job); `total` (when given) receives its whole length.
  virtual bool read_output(uint64_t id, uint64_t offset, uint64_t max, std::string* out,
                           uint64_t* total, std::string* err) = 0;
  // A finished job's whole output.
  bool output(uint64_t id, std::string* out, std::string* err) {
    return read_output(id, 0, UINT64_MAX, out, nullptr, err);
  }
  // Smallest queue position in use (for putting a job in front), 0 when none.
  virtual bool min_queue_pos(int64_t* pos, std::string* err) = 0;

  // Calls fn for each commit's newest final job that is not pruned (the job whose result files
  // the commit's name should hold), in id order, one row at a time: memory stays flat however
  // long the history. fn returns false to stop early.
  virtual bool for_each_file_owner(const std::function<bool(const FinalJob&)>& fn,
                                   std::string* err) = 0;

  // Prune, inside the caller's transaction: drops the output of at most `limit` final jobs that
  // finished before `finished_before_ms` and are not pruned yet (oldest first), keeping their
  // rows (history) marked as pruned. Appends them to *out.
  virtual bool prune(int64_t finished_before_ms, size_t limit, std::vector<PrunedJob>* out,
                     std::string* err) = 0;

  // The id of the newest final job of (repo, commit, job_name) (0 when it has none): the job
  // whose result files that name holds.
  virtual bool newest_final(const std::string& repo, const std::string& commit,
                            const std::string& job_name, uint64_t* id, std::string* err) = 0;
};

}  // namespace simpleci::dispatcher
