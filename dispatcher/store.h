// The dispatcher's durable job store: one SQLite database (WAL journal).
//
// Durability: WAL with synchronous=NORMAL. commit() writes the transaction to the -wal file in
// the page cache and returns without a disk flush, so a commit survives the dispatcher being
// killed (kill -9) at once, but a power cut only once the -wal file was flushed. That flush is
// the WalSyncer's (walsync.h), on its own thread: the dispatcher holds the replies that promise
// durability (RESULT_ACK, after which a runner deletes its copy; ACCEPTED; OK) until a flush that
// began after the round's commit has finished. SQLite itself syncs the WAL before each checkpoint
// and the database after it, so frames checkpointed meanwhile are on the disk too. The database
// file is created with mode 0600 (and narrowed to it when wider).
// Every write happens inside a transaction the caller opens with begin() and closes with
// commit(): the dispatcher groups everything one poll round produced into one transaction and
// answers only after it committed (group commit). Errors are values: each call returns false
// and fills *err; nothing throws. Not thread-safe: one thread owns a Store.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "messages/messages.h"

namespace simpleci::dispatcher {

// One job row. status/attempt/runner describe the newest attempt.
struct JobRow {
  msg::JobSummary summary;
  int64_t queue_pos = 0;  // order among queued jobs: smaller runs first
  bool pruned = false;    // its output was dropped by prune(); its files are not rewritten
};

// A final job whose output prune() dropped.
struct PrunedJob {
  uint64_t job_id = 0;
  std::string commit;
  // True when this job is its commit's newest final job, so test_results/<commit> and
  // <commit>.json are its files and go with it; false when a newer job's files hold that name.
  bool owns_files = false;
};

// What reconcile needs to know of a final job without loading its output.
struct FinalJob {
  msg::JobSummary summary;
  uint64_t output_bytes = 0;
};

class Store {
 public:
  Store() = default;
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Opens (creating if needed) the database at path; ":memory:" for a private in-memory store.
  bool open(const std::string& path, std::string* err);

  bool begin(std::string* err);
  bool commit(std::string* err);
  void rollback();
  bool in_transaction() const { return in_tx_; }

  // A new queued job at the back of the queue; returns its id (0 on failure).
  uint64_t insert_job(const std::string& commit, const std::string& branch, int64_t created_ms,
                      std::string* err);
  bool mark_running(uint64_t id, uint32_t attempt, const std::string& runner, int64_t started_ms,
                    std::string* err);
  // Back to queued (runner cleared) at queue position pos, keeping attempt as the last one run.
  bool requeue(uint64_t id, int64_t pos, std::string* err);
  // Final state of a job, with its output.
  bool finish(const msg::JobSummary& s, const std::string& output, std::string* err);

  // Every queued or running job, queued ones in queue order.
  bool load_active(std::vector<JobRow>* out, std::string* err);
  // Reads become values that tell "not found" (true, *row empty) from "could not read" (false,
  // *err filled): a read failure never passes for absence.
  bool job(uint64_t id, std::optional<JobRow>* row, std::string* err);
  // Newest job for a commit.
  bool latest_for_commit(const std::string& commit, std::optional<JobRow>* row, std::string* err);
  // Newest jobs overall (commit empty) or of one commit, newest first.
  bool recent(const std::string& commit, uint32_t limit, std::vector<msg::JobSummary>* out,
              std::string* err);
  // A finished job's output, or at most `max` bytes of it from byte `offset`; `total` (when
  // given) receives its whole length.
  bool output(uint64_t id, std::string* out, std::string* err, uint64_t offset = 0,
              uint64_t max = UINT64_MAX, uint64_t* total = nullptr);
  // Smallest queue position in use (for putting a job in front), 0 when none.
  int64_t min_queue_pos();

  // Calls fn for each commit's newest final job that is not pruned (the job whose result files
  // the commit's name should hold), in id order, one row at a time: memory stays flat however
  // long the history. fn returns false to stop early. False with *err when reading fails.
  bool for_each_file_owner(const std::function<bool(const FinalJob&)>& fn, std::string* err);

  // Prune, inside the caller's transaction: drops the output of at most `limit` final jobs that
  // finished before `finished_before_ms` and are not pruned yet (oldest first), keeping their
  // rows (history) marked as pruned. Appends them to *out. False with *err on failure.
  bool prune(int64_t finished_before_ms, size_t limit, std::vector<PrunedJob>* out,
             std::string* err);

  // The id of the commit's newest final job (0 when it has none): the job whose result files
  // the commit's name holds.
  bool newest_final(const std::string& commit, uint64_t* id, std::string* err);

  // A PRAGMA's integer value on this connection (e.g. "synchronous": 1 is NORMAL); -1 on error.
  int64_t pragma_value(const char* name);

 private:
  sqlite3_stmt* prepare(const char* sql, std::string* err);
  bool exec(const char* sql, std::string* err);
  bool step_done(sqlite3_stmt* st, std::string* err);
  bool one_row(sqlite3_stmt* st, std::optional<JobRow>* row, std::string* err);
  bool migrate(std::string* err);
  std::string error_text(const char* what) const;

  sqlite3* db_ = nullptr;
  bool in_tx_ = false;
  std::vector<sqlite3_stmt*> cache_;
  struct Stmts {
    sqlite3_stmt *begin, *commit, *rollback, *insert, *running, *requeue, *finish, *active, *by_id,
        *latest, *recent_all, *recent_commit, *output, *min_pos, *owners, *prunable, *drop_output,
        *newest_final;
  } s_{};
};

}  // namespace simpleci::dispatcher
