#include "dispatcher/store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

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
  output         BLOB,
  pruned         INTEGER NOT NULL DEFAULT 0,
  repo           TEXT    NOT NULL DEFAULT '',
  job_name       TEXT    NOT NULL DEFAULT '',
  labels         TEXT    NOT NULL DEFAULT '',
  timeout_s      INTEGER NOT NULL DEFAULT 0
);
)sql";

// Version 2 added the last four columns (docs/MULTI.md "The store, version 2"); a store without
// a user_version (0) or with 1 is a version-1 store.
constexpr int64_t kStoreVersion = 2;
constexpr const char* kV2Columns[] = {
    "repo TEXT NOT NULL DEFAULT ''", "job_name TEXT NOT NULL DEFAULT ''",
    "labels TEXT NOT NULL DEFAULT ''", "timeout_s INTEGER NOT NULL DEFAULT 0"};

// After the migration below (a store made before prune existed has no `pruned` column).
constexpr const char* kIndexes = R"sql(
CREATE INDEX IF NOT EXISTS jobs_by_commit ON jobs(commit_id, id);
CREATE INDEX IF NOT EXISTS jobs_by_repo_commit ON jobs(repo, commit_id, job_name, id);
CREATE INDEX IF NOT EXISTS jobs_by_branch ON jobs(branch, id);
CREATE INDEX IF NOT EXISTS jobs_active ON jobs(status) WHERE status <= 1;
CREATE INDEX IF NOT EXISTS jobs_prunable ON jobs(finished_at_ms) WHERE status >= 2 AND pruned = 0;
)sql";

// The columns read_row() reads, in its order; a query may select more after them.
constexpr const char* kColumns =
    "id, commit_id, branch, status, attempt, runner, exit_code, duration_ms, created_at_ms, "
    "started_at_ms, finished_at_ms, truncated, queue_pos, pruned, repo, job_name, labels, timeout_s";
constexpr int kRowColumns = 18;
// The owners query selects length(output) right after the row's columns.
constexpr int kOutputLengthColumn = kRowColumns;

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
  r.pruned = sqlite3_column_int(st, 13) != 0;
  s.repo = text_col(st, 14);
  s.job_name = text_col(st, 15);
  const std::string labels = text_col(st, 16);  // comma-joined
  for (size_t at = 0; at < labels.size();) {
    const size_t comma = std::min(labels.find(',', at), labels.size());
    if (comma > at) s.labels.push_back(labels.substr(at, comma - at));
    at = comma + 1;
  }
  r.timeout_s = static_cast<uint32_t>(std::clamp<int64_t>(sqlite3_column_int64(st, 17), 0, msg::kMaxTimeoutS));
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

namespace {

// The database holds every job's output: private to its owner. SQLite gives its -wal and -shm
// files the mode of the database file, so creating that one 0600 (or narrowing it) is enough.
bool make_private(const std::string& path, std::string* err) {
  if (path == ":memory:") return true;
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    *err = "cannot open " + path + ": " + std::strerror(errno);
    return false;
  }
  struct stat st {};
  bool ok = ::fstat(fd, &st) == 0 && ((st.st_mode & 0077) == 0 || ::fchmod(fd, 0600) == 0);
  if (!ok) *err = "cannot make " + path + " private (mode 0600): " + std::strerror(errno);
  ::close(fd);
  for (const char* suffix : {"-wal", "-shm"}) {
    if (ok) ::chmod((path + suffix).c_str(), 0600);  // absent is fine
  }
  return ok;
}

}  // namespace

bool Store::open(const std::string& path, std::string* err) {
  if (!make_private(path, err)) return false;
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK) {
    *err = "cannot open " + path + ": " + (db_ ? sqlite3_errmsg(db_) : "out of memory");
    return false;
  }
  sqlite3_busy_timeout(db_, 2000);
  if (!exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;", err) ||
      !migrate(path, err) || !exec(kIndexes, err)) {
    *err = path + ": " + *err;
    return false;
  }
  std::string cols = kColumns;
  s_.begin = prepare("BEGIN IMMEDIATE", err);
  s_.commit = prepare("COMMIT", err);
  s_.rollback = prepare("ROLLBACK", err);
  s_.insert = prepare(
      "INSERT INTO jobs(commit_id, branch, status, created_at_ms, queue_pos, repo, job_name, labels, "
      "timeout_s) VALUES(?1, ?2, 0, ?3, COALESCE((SELECT MAX(id) FROM jobs), 0) + 1, ?4, ?5, ?6, ?7)",
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
      ("SELECT " + cols + " FROM jobs WHERE repo=?1 AND commit_id=?2 ORDER BY id DESC LIMIT 1").c_str(), err);
  // RESULTS_REQUEST: ?1 limit (, ?2 commit), ?3 1 to keep only repository ?4's jobs.
  s_.recent_all = prepare(
      ("SELECT " + cols + " FROM jobs WHERE (?3 = 0 OR repo = ?4) ORDER BY id DESC LIMIT ?1").c_str(), err);
  s_.recent_commit = prepare(("SELECT " + cols +
                              " FROM jobs WHERE commit_id=?2 AND (?3 = 0 OR repo = ?4) ORDER BY id DESC LIMIT ?1")
                                 .c_str(),
                             err);
  // JOBS_REQUEST: ?1 status bits (0: any), ?2 ids below, ?3 limit (, ?4 branch), ?5 1 to keep
  // only repository ?6's jobs. The branch query walks jobs_by_branch; without a branch, the id
  // order of the table itself.
  const std::string filter =
      " (?1 = 0 OR (?1 >> status) & 1) AND id < ?2 AND (?5 = 0 OR repo = ?6) ORDER BY id DESC LIMIT ?3";
  s_.jobs_all = prepare(("SELECT " + cols + " FROM jobs WHERE" + filter).c_str(), err);
  s_.jobs_branch =
      prepare(("SELECT " + cols + " FROM jobs WHERE branch = ?4 AND" + filter).c_str(), err);
  s_.output = prepare("SELECT length(output), substr(output, ?2 + 1, ?3) FROM jobs WHERE id=?1", err);
  s_.min_pos = prepare("SELECT COALESCE(MIN(queue_pos), 0) FROM jobs WHERE status = 0", err);
  s_.owners = prepare(("SELECT " + cols +
                       ", length(output) FROM jobs j WHERE status >= 2 AND pruned = 0 AND id = "
                       "(SELECT MAX(id) FROM jobs k WHERE k.repo = j.repo AND k.commit_id = j.commit_id AND "
                       "k.job_name = j.job_name AND k.status >= 2) "
                       "ORDER BY id").c_str(),
                      err);
  s_.prunable = prepare(
      "SELECT id, commit_id, repo, job_name FROM jobs WHERE status >= 2 AND pruned = 0 AND finished_at_ms < ?1 "
      "ORDER BY finished_at_ms, id LIMIT ?2",
      err);
  s_.drop_output = prepare("UPDATE jobs SET output = NULL, pruned = 1 WHERE id = ?1", err);
  s_.newest_final = prepare(
      "SELECT MAX(id) FROM jobs WHERE repo = ?1 AND commit_id = ?2 AND job_name = ?3 AND status >= 2", err);
  // prepare() keeps only the statements it made: one short means one failed (*err says which).
  return cache_.size() == kStatements;
}

bool Store::has_column(const char* name, bool* has, std::string* err) {
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db_, "SELECT COUNT(*) FROM pragma_table_info('jobs') WHERE name = ?1", -1, &st,
                         nullptr) != SQLITE_OK) {
    *err = error_text("cannot read the schema");
    return false;
  }
  sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  *has = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 1;
  sqlite3_finalize(st);
  return true;
}

// A new store gets the current schema. A version-1 store (one made before prune existed lacks
// `pruned` too) is copied to <path>.v1 first, with SQLite's backup API (the WAL's pages
// included), and then altered in one transaction: a failure leaves it as it was.
bool Store::migrate(const std::string& path, std::string* err) {
  const int64_t version = pragma_value("user_version");
  bool has_jobs = false;
  if (!has_column("id", &has_jobs, err)) return false;
  if (!has_jobs) {
    return exec(kSchema, err) && exec(("PRAGMA user_version = " + std::to_string(kStoreVersion)).c_str(), err);
  }
  if (version == kStoreVersion) return true;
  if (version > kStoreVersion || version < 0) {
    *err = "the store is version " + std::to_string(version) + ", newer than this dispatcher knows (" +
           std::to_string(kStoreVersion) + "): use the simpleCI that wrote it";
    return false;
  }
  const std::string copy = path + ".v1";
  if (!backup_to(copy, err)) return false;
  std::string sql = "BEGIN IMMEDIATE;";
  bool has_pruned = false;
  if (!has_column("pruned", &has_pruned, err)) return false;
  if (!has_pruned) sql += "ALTER TABLE jobs ADD COLUMN pruned INTEGER NOT NULL DEFAULT 0;";
  for (const char* col : kV2Columns) sql += std::string("ALTER TABLE jobs ADD COLUMN ") + col + ";";
  sql += "PRAGMA user_version = " + std::to_string(kStoreVersion) + "; COMMIT;";
  if (!exec(sql.c_str(), err)) {
    std::string ignored;
    exec("ROLLBACK", &ignored);
    return false;
  }
  migrated_from_ = 1;
  migration_copy_ = copy;
  return true;
}

bool Store::backup_to(const std::string& copy, std::string* err) {
  sqlite3* out = nullptr;
  if (sqlite3_open_v2(copy.c_str(), &out, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) != SQLITE_OK) {
    *err = "cannot create " + copy + " (the copy of the version-1 store kept before migrating it): " +
           (out ? sqlite3_errmsg(out) : "out of memory");
    sqlite3_close(out);
    return false;
  }
  sqlite3_backup* b = sqlite3_backup_init(out, "main", db_, "main");
  const int rc = b ? sqlite3_backup_step(b, -1) : sqlite3_errcode(out);
  sqlite3_backup_finish(b);
  const bool ok = rc == SQLITE_DONE;
  if (!ok) *err = "cannot copy the version-1 store to " + copy + ": " + sqlite3_errmsg(out);
  sqlite3_close(out);
  if (ok) ::chmod(copy.c_str(), 0600);
  return ok;
}

int64_t Store::pragma_value(const char* name) {
  sqlite3_stmt* st = nullptr;
  const std::string sql = std::string("PRAGMA ") + name;
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) return -1;
  const int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
  sqlite3_finalize(st);
  return v;
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

uint64_t Store::insert(const msg::JobSummary& s, uint32_t timeout_s, std::string* err) {
  std::string labels;
  for (const std::string& l : s.labels) labels += (labels.empty() ? "" : ",") + l;
  bind_text(s_.insert, 1, s.commit);
  bind_text(s_.insert, 2, s.branch);
  sqlite3_bind_int64(s_.insert, 3, s.created_at_ms);
  bind_text(s_.insert, 4, s.repo);
  bind_text(s_.insert, 5, s.job_name);
  bind_text(s_.insert, 6, labels);
  sqlite3_bind_int64(s_.insert, 7, timeout_s);
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

bool Store::for_each_active(const std::function<bool(const JobRow&)>& fn, std::string* err) {
  int rc;
  while ((rc = sqlite3_step(s_.active)) == SQLITE_ROW) {
    if (!fn(read_row(s_.active))) {
      rc = SQLITE_DONE;
      break;
    }
  }
  sqlite3_reset(s_.active);
  if (rc != SQLITE_DONE) {
    *err = error_text("cannot read jobs");
    return false;
  }
  return true;
}

Lookup Store::one_row(sqlite3_stmt* st, JobRow* row, std::string* err) {
  const int rc = sqlite3_step(st);
  Lookup found = Lookup::kNotFound;
  if (rc == SQLITE_ROW) {
    *row = read_row(st);
    found = Lookup::kFound;
  } else if (rc != SQLITE_DONE) {
    *err = error_text("cannot read jobs");
    found = Lookup::kError;
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return found;
}

Lookup Store::job(uint64_t id, JobRow* row, std::string* err) {
  sqlite3_bind_int64(s_.by_id, 1, static_cast<int64_t>(id));
  return one_row(s_.by_id, row, err);
}

Lookup Store::latest_for_commit(const std::string& repo, const std::string& commit, JobRow* row,
                                std::string* err) {
  bind_text(s_.latest, 1, repo);
  bind_text(s_.latest, 2, commit);
  return one_row(s_.latest, row, err);
}

bool Store::recent(const std::string& commit, uint32_t limit, bool by_repo, const std::string& repo,
                   std::vector<msg::JobSummary>* out, std::string* err) {
  sqlite3_stmt* st = commit.empty() ? s_.recent_all : s_.recent_commit;
  sqlite3_bind_int64(st, 1, limit);
  if (!commit.empty()) bind_text(st, 2, commit);
  sqlite3_bind_int(st, 3, by_repo ? 1 : 0);
  bind_text(st, 4, repo);
  return collect(st, out, err);
}

bool Store::collect(sqlite3_stmt* st, std::vector<msg::JobSummary>* out, std::string* err) {
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

bool Store::jobs(const JobFilter& f, std::vector<msg::JobSummary>* out, std::string* err) {
  sqlite3_stmt* st = f.branch.empty() ? s_.jobs_all : s_.jobs_branch;
  sqlite3_bind_int64(st, 1, f.statuses);
  sqlite3_bind_int64(st, 2, f.before_job_id == 0 || f.before_job_id > uint64_t{INT64_MAX}
                                ? INT64_MAX
                                : static_cast<int64_t>(f.before_job_id));
  sqlite3_bind_int64(st, 3, f.limit);
  if (!f.branch.empty()) bind_text(st, 4, f.branch);
  sqlite3_bind_int(st, 5, f.by_repo ? 1 : 0);
  bind_text(st, 6, f.repo);
  return collect(st, out, err);
}

bool Store::read_output(uint64_t id, uint64_t offset, uint64_t max, std::string* out,
                        uint64_t* total, std::string* err) {
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

bool Store::for_each_file_owner(const std::function<bool(const FinalJob&)>& fn, std::string* err) {
  sqlite3_stmt* st = s_.owners;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    FinalJob f{read_row(st).summary, static_cast<uint64_t>(sqlite3_column_int64(st, kOutputLengthColumn))};
    if (!fn(f)) {
      rc = SQLITE_DONE;
      break;
    }
  }
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) {
    *err = error_text("cannot read final jobs");
    return false;
  }
  return true;
}

bool Store::prune(int64_t finished_before_ms, size_t limit, std::vector<PrunedJob>* out,
                  std::string* err) {
  std::vector<PrunedJob> found;
  sqlite3_bind_int64(s_.prunable, 1, finished_before_ms);
  sqlite3_bind_int64(s_.prunable, 2, static_cast<int64_t>(std::min<size_t>(limit, INT64_MAX)));
  int rc;
  while ((rc = sqlite3_step(s_.prunable)) == SQLITE_ROW) {
    found.push_back({static_cast<uint64_t>(sqlite3_column_int64(s_.prunable, 0)), text_col(s_.prunable, 1),
                     false, text_col(s_.prunable, 2), text_col(s_.prunable, 3)});
  }
  sqlite3_reset(s_.prunable);
  sqlite3_clear_bindings(s_.prunable);
  if (rc != SQLITE_DONE) {
    *err = error_text("cannot read jobs to prune");
    return false;
  }
  for (PrunedJob& p : found) {
    sqlite3_bind_int64(s_.drop_output, 1, static_cast<int64_t>(p.job_id));
    uint64_t owner = 0;
    if (!step_done(s_.drop_output, err) || !newest_final(p.repo, p.commit, p.job_name, &owner, err)) return false;
    p.owns_files = owner == p.job_id;
    out->push_back(std::move(p));
  }
  return true;
}

bool Store::newest_final(const std::string& repo, const std::string& commit, const std::string& job_name,
                         uint64_t* id, std::string* err) {
  bind_text(s_.newest_final, 1, repo);
  bind_text(s_.newest_final, 2, commit);
  bind_text(s_.newest_final, 3, job_name);
  const int rc = sqlite3_step(s_.newest_final);
  *id = rc == SQLITE_ROW ? static_cast<uint64_t>(sqlite3_column_int64(s_.newest_final, 0)) : 0;
  sqlite3_reset(s_.newest_final);
  sqlite3_clear_bindings(s_.newest_final);
  if (rc != SQLITE_ROW) {
    *err = error_text("cannot read jobs");
    return false;
  }
  return true;
}

bool Store::min_queue_pos(int64_t* pos, std::string* err) {
  const int rc = sqlite3_step(s_.min_pos);
  *pos = rc == SQLITE_ROW ? sqlite3_column_int64(s_.min_pos, 0) : 0;
  sqlite3_reset(s_.min_pos);
  if (rc != SQLITE_ROW) {
    *err = error_text("cannot read the queue");
    return false;
  }
  return true;
}

}  // namespace simpleci::dispatcher
