// The dispatcher's durable job store: one SQLite database (WAL journal).
//
// Durability: synchronous=NORMAL in WAL mode, so a committed transaction survives the
// dispatcher being killed (even with SIGKILL); a power cut may lose the last transactions.
// Every write happens inside a transaction the caller opens with begin() and closes with
// commit(): the dispatcher groups everything one poll round produced into one transaction and
// answers only after it committed (group commit). Errors are values: each call returns false
// and fills *err; nothing throws. Not thread-safe: one thread owns a Store.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "messages/messages.h"

namespace simpleci::dispatcher {

// One job row. status/attempt/runner describe the newest attempt.
struct JobRow {
  msg::JobSummary summary;
  int64_t queue_pos = 0;  // order among queued jobs: smaller runs first
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
  std::optional<JobRow> job(uint64_t id, std::string* err);
  // Newest job for a commit.
  std::optional<JobRow> latest_for_commit(const std::string& commit, std::string* err);
  // Newest jobs overall (commit empty) or of one commit, newest first.
  bool recent(const std::string& commit, uint32_t limit, std::vector<msg::JobSummary>* out,
              std::string* err);
  // A finished job's output, or at most `max` bytes of it from byte `offset`; `total` (when
  // given) receives its whole length.
  bool output(uint64_t id, std::string* out, std::string* err, uint64_t offset = 0,
              uint64_t max = UINT64_MAX, uint64_t* total = nullptr);
  // Smallest queue position in use (for putting a job in front), 0 when none.
  int64_t min_queue_pos();

 private:
  sqlite3_stmt* prepare(const char* sql, std::string* err);
  bool exec(const char* sql, std::string* err);
  bool step_done(sqlite3_stmt* st, std::string* err);
  std::string error_text(const char* what) const;

  sqlite3* db_ = nullptr;
  bool in_tx_ = false;
  std::vector<sqlite3_stmt*> cache_;
  struct Stmts {
    sqlite3_stmt *begin, *commit, *rollback, *insert, *running, *requeue, *finish, *active, *by_id,
        *latest, *recent_all, *recent_commit, *output, *min_pos;
  } s_{};
};

}  // namespace simpleci::dispatcher
