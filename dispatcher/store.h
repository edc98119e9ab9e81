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
// answers only after it committed (group commit). The calls and their contracts are JobStore's
// (job_store.h): errors are values, and a read failure never passes for "not found". Not
// thread-safe: one thread owns a Store.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dispatcher/job_store.h"

namespace simpleci::dispatcher {

class Store final : public JobStore {
 public:
  Store() = default;
  ~Store() override;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Opens (creating if needed) the database at path; ":memory:" for a private in-memory store.
  bool open(const std::string& path, std::string* err);

  bool begin(std::string* err) override;
  bool commit(std::string* err) override;
  void rollback() override;
  bool in_transaction() const override { return in_tx_; }

  uint64_t insert(const msg::JobSummary& s, uint32_t timeout_s, std::string* err) override;
  bool mark_running(uint64_t id, uint32_t attempt, const std::string& runner, int64_t started_ms,
                    std::string* err) override;
  bool requeue(uint64_t id, int64_t pos, std::string* err) override;
  bool finish(const msg::JobSummary& s, const std::string& output, std::string* err) override;

  bool for_each_active(const std::function<bool(const JobRow&)>& fn, std::string* err) override;
  Lookup job(uint64_t id, JobRow* row, std::string* err) override;
  Lookup latest_for_commit(const std::string& repo, const std::string& commit, JobRow* row,
                           std::string* err) override;
  bool recent(const std::string& commit, uint32_t limit, bool by_repo, const std::string& repo,
              std::vector<msg::JobSummary>* out, std::string* err) override;
  bool jobs(const JobFilter& f, std::vector<msg::JobSummary>* out, std::string* err) override;
  bool read_output(uint64_t id, uint64_t offset, uint64_t max, std::string* out, uint64_t* total,
                   std::string* err) override;
  bool min_queue_pos(int64_t* pos, std::string* err) override;
  bool for_each_file_owner(const std::function<bool(const FinalJob&)>& fn,
                           std::string* err) override;
  bool prune(int64_t finished_before_ms, size_t limit, std::vector<PrunedJob>* out,
             std::string* err) override;
  bool newest_final(const std::string& repo, const std::string& commit, const std::string& job_name,
                    uint64_t* id, std::string* err) override;

  // A PRAGMA's integer value on this connection (e.g. "synchronous": 1 is NORMAL); -1 on error.
  int64_t pragma_value(const char* name);
  // When open() migrated an older store: the version it was (else 0), and where the copy of it
  // was kept.
  int64_t migrated_from() const { return migrated_from_; }
  const std::string& migration_copy() const { return migration_copy_; }

 private:
  sqlite3_stmt* prepare(const char* sql, std::string* err);
  bool exec(const char* sql, std::string* err);
  bool step_done(sqlite3_stmt* st, std::string* err);
  Lookup one_row(sqlite3_stmt* st, JobRow* row, std::string* err);
  // Steps st to the end, appending each row's summary; resets it.
  bool collect(sqlite3_stmt* st, std::vector<msg::JobSummary>* out, std::string* err);
  bool migrate(const std::string& path, std::string* err);
  bool has_column(const char* name, bool* has, std::string* err);
  bool backup_to(const std::string& copy, std::string* err);
  std::string error_text(const char* what) const;

  sqlite3* db_ = nullptr;
  bool in_tx_ = false;
  int64_t migrated_from_ = 0;
  std::string migration_copy_;
  std::vector<sqlite3_stmt*> cache_;
  // Every prepared statement, finalized by the destructor; open() prepares kStatements of them.
  struct Stmts {
    sqlite3_stmt *begin, *commit, *rollback, *insert, *running, *requeue, *finish, *active, *by_id,
        *latest, *recent_all, *recent_commit, *output, *min_pos, *owners, *prunable, *drop_output,
        *newest_final, *jobs_all, *jobs_branch;
  } s_{};
  static constexpr size_t kStatements = sizeof(Stmts) / sizeof(sqlite3_stmt*);
};

}  // namespace simpleci::dispatcher
