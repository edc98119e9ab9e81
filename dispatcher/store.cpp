#include "dispatcher/store.h"

#include <algorithm>

namespace simpleci::dispatcher {

namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS jobs (
  id             INTEGER PRIMARY KEY AUTOINCREMENT,
  commit_id      TEXT    NOT NULL,
  branch         TEXT    NOT NULL,
  status         INTEGER NOT NULL,
  attempt        INTEGER NOT NULL DEFAULT 0,
  queue_pos      INTEGER NOT NULL DEFAULT 0,
  runner         TEXT    NOT NULL DEFAULT '',
  exit_code      INTEGER NOT NULL DEFAULT -1,
  created_at_ms  INTEGER NOT NULL,
  started_at_ms  INTEGER NOT NULL DEFAULT 0,
  finished_at_ms INTEGER NOT NULL DEFAULT 0,
  duration_ms    INTEGER NOT NULL DEFAULT 0,
  truncated      INTEGER NOT NULL DEFAULT 0,
  output         BLOB
);
CREATE INDEX IF NOT EXISTS jobs_by_commit ON jobs(commit_id, id);
CREATE INDEX IF NOT EXISTS jobs_active ON jobs(status) WHERE status <= 1;
)sql";

constexpr const char* kColumns =
    "id, commit_id, branch, status, attempt, runner, exit_code, duration_ms, created_at_ms, "
    "started_at_ms, finished_at_ms, truncated, queue_pos";

std::string text_col(sqlite3_stmt* st, int i) {
  const unsigned char* p = sqlite3_column_text(st, i);
  return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(st, i)) : "";
}

JobRow read_row(sqlite3_stmt* st) {
  JobRow r;
  msg::JobSummary& s = r.summary;
  s.job_id = static_cast<uint64_t>(sqlite3_column_int64(st, 0));
  s.commit = text_col(st, 1);
  s.branch = text_col(st, 2);
  int status = sqlite3_column_int(st, 3);
  s.status = status >= 0 && status <= msg::kMaxJobStatus ? static_cast<msg::JobStatus>(status)
                                                         : msg::JobStatus::kError;
  s.attempt = static_cast<uint32_t>(sqlite3_column_int64(st, 4));
  s.runner = text_col(st, 5);
  s.exit_code = sqlite3_column_int(st, 6);
  s.duration_ms = sqlite3_column_int64(st, 7);
  s.created_at_ms = sqlite3_column_int64(st, 8);
  s.started_at_ms = sqlite3_column_int64(st, 9);
  s.finished_at_ms = sqlite3_column_int64(st, 10);
  s.truncated = sqlite3_column_int(st, 11) != 0;
  r.queue_pos = sqlite3_column_int64(st, 12);
  return r;
}

void bind_text(sqlite3_stmt* st, int i, const std::string& v) {
  sqlite3_bind_text(st, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
}

}  // namespace

Store::~Store() {
  for (sqlite3_stmt* st : cache_) sqlite3_finalize(st);
  if (db_) sqlite3_close(db_);
}

std::string Store::error_text(const char* what) const {
  return std::string(what) + ": " + (db_ ? sqlite3_errmsg(db_) : "no database");
}

sqlite3_stmt* Store::prepare(const char* sql, std::string* err) {
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db_, sql, -1, &st, nullptr) != SQLITE_OK) {
    *err = error_text("cannot prepare statement");
    return nullptr;
  }
  cache_.push_back(st);
  return st;
}

bool Store::exec(const char* sql, std::string* err) {
  char* msg = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &msg) != SQLITE_OK) {
    *err = std::string("sqlite: ") + (msg ? msg : "error");
    sqlite3_free(msg);
    return false;
  }
  return true;
}

bool Store::step_done(sqlite3_stmt* st, std::string* err) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
    *err = error_text("store write failed");
    return false;
  }
  return true;
}

bool Store::open(const std::string& path, std::string* err) {
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK) {
    *err = "cannot open " + path + ": " + (db_ ? sqlite3_errmsg(db_) : "out of memory");
    return false;
  }
  sqlite3_busy_timeout(db_, 2000);
  if (!exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;", err) ||
      !exec(kSchema, err)) {
    *err = path + ": " + *err;
    return false;
  }
  std::string cols = kColumns;
  s_.begin = prepare("BEGIN IMMEDIATE", err);
  s_.commit = prepare("COMMIT", err);
  s_.rollback = prepare("ROLLBACK", err);
  s_.insert = prepare(
      "INSERT INTO jobs(commit_id, branch, status, created_at_ms, queue_pos) "
      "VALUES(?1, ?2, 0, ?3, COALESCE((SELECT MAX(id) FROM jobs), 0) + 1)",
      err);
  s_.running = prepare(
      "UPDATE jobs SET status=1, attempt=?2, runner=?3, started_at_ms=?4 WHERE id=?1", err);
  s_.requeue = prepare(
      "UPDATE jobs SET status=0, runner='', started_at_ms=0, queue_pos=?2 WHERE id=?1", err);
  s_.finish = prepare(
      "UPDATE jobs SET status=?2, attempt=?3, runner=?4, exit_code=?5, started_at_ms=?6, "
      "finished_at_ms=?7, duration_ms=?8, truncated=?9, output=zeroblob(?10) WHERE id=?1",
      err);
  s_.active = prepare(("SELECT " + cols + " FROM jobs WHERE status <= 1 ORDER BY queue_pos, id").c_str(), err);
  s_.by_id = prepare(("SELECT " + cols + " FROM jobs WHERE id=?1").c_str(), err);
  s_.latest = prepare(
      ("SELECT " + cols + " FROM jobs WHERE commit_id=?1 ORDER BY id DESC LIMIT 1").c_str(), err);
  s_.recent_all = prepare(("SELECT " + cols + " FROM jobs ORDER BY id DESC LIMIT ?1").c_str(), err);
  s_.recent_commit = prepare(
      ("SELECT " + cols + " FROM jobs WHERE commit_id=?1 ORDER BY id DESC LIMIT ?2").c_str(), err);
  s_.output = prepare("SELECT length(output), substr(output, ?2 + 1, ?3) FROM jobs WHERE id=?1", err);
  s_.min_pos = prepare("SELECT COALESCE(MIN(queue_pos), 0) FROM jobs WHERE status = 0", err);
  for (sqlite3_stmt* st : cache_) {
    if (st == nullptr) return false;
  }
  return cache_.size() == 14;
}

bool Store::begin(std::string* err) {
  if (in_tx_) return true;
  if (!step_done(s_.begin, err)) return false;
  in_tx_ = true;
  return true;
}

bool Store::commit(std::string* err) {
  if (!in_tx_) return true;
  bool ok = step_done(s_.commit, err);
  if (!ok) rollback();
  in_tx_ = false;
  return ok;
}

void Store::rollback() {
  std::string ignored;
  if (sqlite3_get_autocommit(db_) == 0) step_done(s_.rollback, &ignored);
  in_tx_ = false;
}

uint64_t Store::insert_job(const std::string& commit, const std::string& branch,
                           int64_t created_ms, std::string* err) {
  bind_text(s_.insert, 1, commit);
  bind_text(s_.insert, 2, branch);
  sqlite3_bind_int64(s_.insert, 3, created_ms);
  if (!step_done(s_.insert, err)) return 0;
  return static_cast<uint64_t>(sqlite3_last_insert_rowid(db_));
}

bool Store::mark_running(uint64_t id, uint32_t attempt, const std::string& runner,
                         int64_t started_ms, std::string* err) {
  sqlite3_bind_int64(s_.running, 1, static_cast<int64_t>(id));
  sqlite3_bind_int64(s_.running, 2, attempt);
  bind_text(s_.running, 3, runner);
  sqlite3_bind_int64(s_.running, 4, started_ms);
  return step_done(s_.running, err);
}

bool Store::requeue(uint64_t id, int64_t pos, std::string* err) {
  sqlite3_bind_int64(s_.requeue, 1, static_cast<int64_t>(id));
  sqlite3_bind_int64(s_.requeue, 2, pos);
  return step_done(s_.requeue, err);
}

bool Store::finish(const msg::JobSummary& s, const std::string& output, std::string* err) {
  sqlite3_stmt* st = s_.finish;
  sqlite3_bind_int64(st, 1, static_cast<int64_t>(s.job_id));
  sqlite3_bind_int(st, 2, static_cast<int>(s.status));
  sqlite3_bind_int64(st, 3, s.attempt);
  bind_text(st, 4, s.runner);
  sqlite3_bind_int(st, 5, s.exit_code);
  sqlite3_bind_int64(st, 6, s.started_at_ms);
  sqlite3_bind_int64(st, 7, s.finished_at_ms);
  sqlite3_bind_int64(st, 8, s.duration_ms);
  sqlite3_bind_int(st, 9, s.truncated ? 1 : 0);
  // The output (up to 16 MiB) goes in through incremental blob I/O: SQLite writes it straight
  // into its pages instead of first building the whole row in memory.
  sqlite3_bind_int64(st, 10, static_cast<int64_t>(output.size()));
  if (!step_done(st, err)) return false;
  if (output.empty()) return true;
  sqlite3_blob* blob = nullptr;
  int rc = sqlite3_blob_open(db_, "main", "jobs", "output", static_cast<sqlite3_int64>(s.job_id), 1, &blob);
  if (rc == SQLITE_OK) rc = sqlite3_blob_write(blob, output.data(), static_cast<int>(output.size()), 0);
  sqlite3_blob_close(blob);
  if (rc != SQLITE_OK) {
    *err = error_text("cannot store the output");
    return false;
  }
  return true;
}

bool Store::load_active(std::vector<JobRow>* out, std::string* err) {
  out->clear();
  int rc;
  while ((rc = sqlite3_step(s_.active)) == SQLITE_ROW) out->push_back(read_row(s_.active));
  sqlite3_reset(s_.active);
  if (rc != SQLITE_DONE) {
    *err = error_text("cannot read jobs");
    return false;
  }
  return true;
}

namespace {
std::optional<JobRow> one_row(sqlite3_stmt* st) {
  std::optional<JobRow> r;
  if (sqlite3_step(st) == SQLITE_ROW) r = read_row(st);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return r;
}
}  // namespace

std::optional<JobRow> Store::job(uint64_t id, std::string* /*err*/) {
  sqlite3_bind_int64(s_.by_id, 1, static_cast<int64_t>(id));
  return one_row(s_.by_id);
}

std::optional<JobRow> Store::latest_for_commit(const std::string& commit, std::string* /*err*/) {
  bind_text(s_.latest, 1, commit);
  return one_row(s_.latest);
}

bool Store::recent(const std::string& commit, uint32_t limit, std::vector<msg::JobSummary>* out,
                   std::string* err) {
  sqlite3_stmt* st = commit.empty() ? s_.recent_all : s_.recent_commit;
  if (commit.empty()) {
    sqlite3_bind_int64(st, 1, limit);
  } else {
    bind_text(st, 1, commit);
    sqlite3_bind_int64(st, 2, limit);
  }
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) out->push_back(read_row(st).summary);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if (rc != SQLITE_DONE) {
    *err = error_text("cannot read jobs");
    return false;
  }
  return true;
}

bool Store::output(uint64_t id, std::string* out, std::string* err, uint64_t offset, uint64_t max,
                   uint64_t* total) {
  constexpr uint64_t kSqlMax = uint64_t{1} << 30;  // past any output (16 MiB); larger overflows substr()
  sqlite3_bind_int64(s_.output, 1, static_cast<int64_t>(id));
  sqlite3_bind_int64(s_.output, 2, static_cast<int64_t>(std::min(offset, kSqlMax - 1)));
  sqlite3_bind_int64(s_.output, 3, static_cast<int64_t>(std::min(max, kSqlMax)));
  out->clear();
  if (total) *total = 0;
  int rc = sqlite3_step(s_.output);
  if (rc == SQLITE_ROW) {
    if (total) *total = static_cast<uint64_t>(sqlite3_column_int64(s_.output, 0));
    const void* p = sqlite3_column_blob(s_.output, 1);
    if (p) out->assign(static_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(s_.output, 1)));
  }
  sqlite3_reset(s_.output);
  sqlite3_clear_bindings(s_.output);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    *err = error_text("cannot read output");
    return false;
  }
  return true;
}

int64_t Store::min_queue_pos() {
  int64_t v = 0;
  if (sqlite3_step(s_.min_pos) == SQLITE_ROW) v = sqlite3_column_int64(s_.min_pos, 0);
  sqlite3_reset(s_.min_pos);
  return v;
}

}  // namespace simpleci::dispatcher
