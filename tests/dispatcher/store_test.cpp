// The SQLite store on a real temporary file: what is committed survives a reopen, what is not
// committed does not.
#include <poll.h>
#include <sys/stat.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "dispatcher/store.h"
#include "dispatcher/walsync.h"

namespace simpleci::dispatcher {
namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/simpleci-store-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    path_ = (dir_ / "simpleci.db").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
  std::string path_, err_;
};

const std::string kA(40, 'a'), kB(40, 'b'), kC(64, 'c');

// The jobs table of a store written before version 2 (`extra`: columns that version had after
// `output`; before prune there were none).
std::string old_jobs_table(const std::string& extra) {
  return "CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, commit_id TEXT NOT NULL, "
         "branch TEXT NOT NULL, status INTEGER NOT NULL, attempt INTEGER NOT NULL DEFAULT 0, "
         "queue_pos INTEGER NOT NULL DEFAULT 0, runner TEXT NOT NULL DEFAULT '', exit_code "
         "INTEGER NOT NULL DEFAULT -1, created_at_ms INTEGER NOT NULL, started_at_ms INTEGER "
         "NOT NULL DEFAULT 0, finished_at_ms INTEGER NOT NULL DEFAULT 0, duration_ms INTEGER "
         "NOT NULL DEFAULT 0, truncated INTEGER NOT NULL DEFAULT 0, output BLOB" + extra + ");";
}

TEST_F(StoreTest, CommittedJobsSurviveReopenInQueueOrder) {
  {
    Store s;
    ASSERT_TRUE(s.open(path_, &err_)) << err_;
    ASSERT_TRUE(s.begin(&err_));
    uint64_t a = s.insert_job(kA, "main", 1, &err_);
    uint64_t b = s.insert_job(kB, "dev", 2, &err_);
    uint64_t c = s.insert_job(kC, "main", 3, &err_);
    ASSERT_TRUE(a && b && c) << err_;
    ASSERT_TRUE(s.mark_running(a, 1, "r1", 10, &err_));
    int64_t front = 0;
    ASSERT_TRUE(s.min_queue_pos(&front, &err_)) << err_;
    ASSERT_TRUE(s.requeue(c, front - 1, &err_));  // c jumps ahead of b
    ASSERT_TRUE(s.commit(&err_));
  }
  Store s;
  ASSERT_TRUE(s.open(path_, &err_)) << err_;
  std::vector<JobRow> rows;
  ASSERT_TRUE(s.load_active(&rows, &err_));
  ASSERT_EQ(rows.size(), 3u);
  std::vector<std::string> queued;
  for (const auto& r : rows) {
    if (r.summary.status == msg::JobStatus::kQueued) queued.push_back(r.summary.commit);
    else EXPECT_EQ(r.summary.runner, "r1");
  }
  EXPECT_EQ(queued, (std::vector<std::string>{kC, kB}));
}

TEST_F(StoreTest, UncommittedWorkIsGoneAfterRollback) {
  Store s;
  ASSERT_TRUE(s.open(path_, &err_));
  ASSERT_TRUE(s.begin(&err_));
  s.insert_job(kA, "main", 1, &err_);
  s.rollback();
  std::vector<JobRow> rows;
  ASSERT_TRUE(s.load_active(&rows, &err_));
  EXPECT_TRUE(rows.empty());
}

TEST_F(StoreTest, FinishedJobKeepsOutputAndLeavesTheActiveSet) {
  Store s;
  ASSERT_TRUE(s.open(path_, &err_));
  ASSERT_TRUE(s.begin(&err_));
  uint64_t a = s.insert_job(kA, "main", 1, &err_);
  msg::JobSummary sum;
  sum.job_id = a;
  sum.commit = kA;
  sum.status = msg::JobStatus::kFailed;
  sum.exit_code = 2;
  sum.attempt = 1;
  sum.runner = "r1";
  std::string output("bytes\0with nul", 14);
  ASSERT_TRUE(s.finish(sum, output, &err_));
  ASSERT_TRUE(s.commit(&err_));
  std::vector<JobRow> rows;
  ASSERT_TRUE(s.load_active(&rows, &err_));
  EXPECT_TRUE(rows.empty());
  JobRow latest;
  ASSERT_EQ(s.latest_for_commit("", kA, &latest, &err_), Lookup::kFound) << err_;
  EXPECT_EQ(latest.summary.exit_code, 2);
  std::string got;
  ASSERT_TRUE(s.output(a, &got, &err_));
  EXPECT_EQ(got, output);
}

TEST_F(StoreTest, OpeningAFolderFailsWithAClearError) {
  Store s;
  EXPECT_FALSE(s.open(dir_.string(), &err_));
  EXPECT_NE(err_.find(dir_.string()), std::string::npos) << err_;
}


// The commit itself does not flush (synchronous=NORMAL, WAL); the WalSyncer flushes the -wal
// file on its thread and reports every round that committed before its flush began.
TEST_F(StoreTest, CommitsGoToTheWalAndTheSyncerFlushesThem) {
  Store s;
  ASSERT_TRUE(s.open(path_, &err_)) << err_;
  EXPECT_EQ(s.pragma_value("synchronous"), 1) << "NORMAL: COMMIT does not wait for the disk";
  auto syncer = WalSyncer::open(path_, &err_);
  ASSERT_TRUE(syncer) << err_;
  uint64_t seq = 99;
  ASSERT_TRUE(syncer->durable(&seq, &err_));
  EXPECT_EQ(seq, 0u);

  for (uint64_t round = 1; round <= 3; ++round) {
    ASSERT_TRUE(s.begin(&err_)) << err_;
    ASSERT_NE(s.insert_job("c" + std::to_string(round), "main", 1, &err_), 0u) << err_;
    ASSERT_TRUE(s.commit(&err_)) << err_;
    syncer->committed(round);
  }
  EXPECT_GT(std::filesystem::file_size(path_ + "-wal"), 0u) << "the commits are in the WAL";
  ASSERT_TRUE(syncer->wait_idle(&err_)) << err_;
  pollfd p{syncer->fd(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 0), 1) << "the loop is woken";
  ASSERT_TRUE(syncer->durable(&seq, &err_)) << err_;
  EXPECT_EQ(seq, 3u);
  EXPECT_EQ(::poll(&p, 1, 0), 0) << "reading the news clears the wake-up";
}

TEST_F(StoreTest, TheSyncerNeedsTheStoreOpenInWalMode) {
  EXPECT_FALSE(WalSyncer::open(path_, &err_)) << "no store open: no -wal file";
  EXPECT_NE(err_.find("-wal"), std::string::npos) << err_;
}

TEST_F(StoreTest, TheDatabaseIsPrivateEvenWhenItWasNot) {
  const mode_t old_mask = ::umask(022);
  {
    Store s;
    ASSERT_TRUE(s.open(path_, &err_)) << err_;
    ASSERT_TRUE(s.begin(&err_));
    ASSERT_NE(s.insert_job(kA, "main", 1, &err_), 0u) << err_;
    ASSERT_TRUE(s.commit(&err_));
    struct stat st {};
    ASSERT_EQ(::stat(path_.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    ASSERT_EQ(::stat((path_ + "-wal").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u) << "SQLite gives the WAL the database's mode";
  }
  ::chmod(path_.c_str(), 0644);  // made by an older version
  {
    Store s;
    ASSERT_TRUE(s.open(path_, &err_)) << err_;
    struct stat st {};
    ASSERT_EQ(::stat(path_.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
  }
  ::umask(old_mask);
}

TEST_F(StoreTest, AReadFailureIsNotNotFound) {
  Store s;
  ASSERT_TRUE(s.open(path_, &err_)) << err_;
  JobRow row;
  EXPECT_EQ(s.job(42, &row, &err_), Lookup::kNotFound) << err_;
  EXPECT_EQ(s.latest_for_commit("", kA, &row, &err_), Lookup::kNotFound) << err_;
  int64_t front = -1;
  ASSERT_TRUE(s.min_queue_pos(&front, &err_)) << err_;
  EXPECT_EQ(front, 0) << "no queued job";
  // Another process breaks the database under the open store: reads fail, and say so.
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "DROP TABLE jobs", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(other);
  err_.clear();
  EXPECT_EQ(s.job(42, &row, &err_), Lookup::kError);
  EXPECT_FALSE(err_.empty());
  err_.clear();
  EXPECT_EQ(s.latest_for_commit("", kA, &row, &err_), Lookup::kError);
  EXPECT_FALSE(err_.empty());
  err_.clear();
  EXPECT_FALSE(s.min_queue_pos(&front, &err_));
  EXPECT_FALSE(err_.empty());
  err_.clear();
  std::string out;
  EXPECT_FALSE(s.output(42, &out, &err_));
  EXPECT_FALSE(err_.empty());
}

TEST_F(StoreTest, PruneDropsOldOutputKeepsTheRowsAndSaysWhoOwnsTheFiles) {
  Store s;
  ASSERT_TRUE(s.open(path_, &err_)) << err_;
  ASSERT_TRUE(s.begin(&err_));
  auto finished = [&](const std::string& commit, int64_t at) {
    msg::JobSummary sum;
    sum.job_id = s.insert_job(commit, "main", at, &err_);
    sum.commit = commit;
    sum.status = msg::JobStatus::kPassed;
    sum.finished_at_ms = at;
    EXPECT_TRUE(s.finish(sum, "output " + std::to_string(at), &err_)) << err_;
    return sum.job_id;
  };
  uint64_t a1 = finished(kA, 100), b1 = finished(kB, 200), a2 = finished(kA, 300);
  uint64_t c1 = finished(kC, 5000);
  uint64_t queued = s.insert_job(kC, "main", 6000, &err_);
  ASSERT_TRUE(s.commit(&err_));

  ASSERT_TRUE(s.begin(&err_));
  std::vector<PrunedJob> pruned;
  ASSERT_TRUE(s.prune(1000, 2, &pruned, &err_)) << err_;  // a bounded batch, oldest first
  ASSERT_EQ(pruned.size(), 2u);
  EXPECT_EQ(pruned[0].job_id, a1);
  EXPECT_FALSE(pruned[0].owns_files) << "a2, newer, owns the files of kA";
  EXPECT_EQ(pruned[1].job_id, b1);
  EXPECT_TRUE(pruned[1].owns_files);
  ASSERT_TRUE(s.prune(1000, 100, &pruned, &err_)) << err_;
  ASSERT_EQ(pruned.size(), 3u);
  EXPECT_EQ(pruned[2].job_id, a2);
  EXPECT_TRUE(pruned[2].owns_files);
  ASSERT_TRUE(s.commit(&err_));

  std::string out;
  ASSERT_TRUE(s.output(a2, &out, &err_));
  EXPECT_EQ(out, "");
  ASSERT_TRUE(s.output(c1, &out, &err_));
  EXPECT_EQ(out, "output 5000");
  JobRow row;
  ASSERT_EQ(s.job(b1, &row, &err_), Lookup::kFound) << err_;
  EXPECT_TRUE(row.pruned);
  std::vector<uint64_t> owners;
  ASSERT_TRUE(s.for_each_file_owner(
      [&](const FinalJob& f) {
        owners.push_back(f.summary.job_id);
        EXPECT_EQ(f.output_bytes, 11u);
        return true;
      },
      &err_));
  EXPECT_EQ(owners, (std::vector<uint64_t>{c1})) << "pruned and queued jobs own no files";
  (void)queued;
}

TEST_F(StoreTest, AStoreFromBeforePruneGainsTheColumnAndKeepsItsJobs) {
  sqlite3* old = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &old), SQLITE_OK);
  const std::string sql = old_jobs_table("") +
                         "INSERT INTO jobs(commit_id, branch, status, created_at_ms, finished_at_ms, output) "
                         "VALUES('" + kA + "', 'main', 2, 1, 5, x'6f6b');";
  ASSERT_EQ(sqlite3_exec(old, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(old);
  Store s;
  ASSERT_TRUE(s.open(path_, &err_)) << err_;
  JobRow row;
  ASSERT_EQ(s.job(1, &row, &err_), Lookup::kFound) << err_;
  EXPECT_FALSE(row.pruned);
  ASSERT_TRUE(s.begin(&err_));
  std::vector<PrunedJob> pruned;
  ASSERT_TRUE(s.prune(10, 10, &pruned, &err_)) << err_;
  ASSERT_TRUE(s.commit(&err_));
  EXPECT_EQ(pruned.size(), 1u);
}

// A store written by the version-1 dispatcher (with `pruned`, no user_version): migrated in
// place on the first open, its jobs kept, and the old file kept beside it, untouched.
TEST_F(StoreTest, AVersionOneStoreIsMigratedInPlaceAndACopyIsKept) {
  sqlite3* old = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &old), SQLITE_OK);
  const std::string sql =
      "PRAGMA journal_mode=WAL;" + old_jobs_table(", pruned INTEGER NOT NULL DEFAULT 0") +
      "INSERT INTO jobs(commit_id, branch, status, created_at_ms, finished_at_ms, output) "
      "VALUES('" + kA + "', 'main', 2, 1, 5, x'6f6b');"
      "INSERT INTO jobs(commit_id, branch, status, created_at_ms, queue_pos) VALUES('" + kB + "', 'dev', 0, 2, 2);";
  ASSERT_EQ(sqlite3_exec(old, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(old);
  {
    Store s;
    ASSERT_TRUE(s.open(path_, &err_)) << err_;
    EXPECT_EQ(s.migrated_from(), 1);
    EXPECT_EQ(s.migration_copy(), path_ + ".v1");
    EXPECT_EQ(s.pragma_value("user_version"), 2);
    JobRow row;
    ASSERT_EQ(s.job(1, &row, &err_), Lookup::kFound) << err_;
    EXPECT_EQ(row.summary.commit, kA);
    EXPECT_EQ(row.summary.status, msg::JobStatus::kPassed);
    EXPECT_EQ(row.summary.repo, "");
    EXPECT_EQ(row.summary.job_name, "");
    EXPECT_TRUE(row.summary.labels.empty());
    std::vector<uint64_t> active;
    ASSERT_TRUE(s.for_each_active([&](const JobRow& r) { active.push_back(r.summary.job_id); return true; }, &err_));
    EXPECT_EQ(active, std::vector<uint64_t>{2});
  }
  // The copy is the version-1 store as it was: its rows, none of the new columns.
  sqlite3* copy = nullptr;
  ASSERT_EQ(sqlite3_open_v2((path_ + ".v1").c_str(), &copy, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(copy, "SELECT COUNT(*), (SELECT COUNT(*) FROM pragma_table_info('jobs') WHERE name = 'repo') FROM jobs",
                               -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(st, 0), 2);
  EXPECT_EQ(sqlite3_column_int(st, 1), 0);
  sqlite3_finalize(st);
  sqlite3_close(copy);
  struct stat m{};
  ASSERT_EQ(::stat((path_ + ".v1").c_str(), &m), 0);
  EXPECT_EQ(m.st_mode & 0777, 0600u);
  // Opened again: already version 2, nothing migrated.
  Store again;
  ASSERT_TRUE(again.open(path_, &err_)) << err_;
  EXPECT_EQ(again.migrated_from(), 0);
}

TEST_F(StoreTest, ANewStoreIsVersionTwoAndAStoreFromANewerDispatcherIsRefused) {
  {
    Store s;
    ASSERT_TRUE(s.open(path_, &err_)) << err_;
    EXPECT_EQ(s.pragma_value("user_version"), 2);
    EXPECT_EQ(s.migrated_from(), 0);
  }
  EXPECT_FALSE(std::filesystem::exists(path_ + ".v1"));
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 3", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  Store s;
  EXPECT_FALSE(s.open(path_, &err_));
  EXPECT_NE(err_.find("version 3, newer than this dispatcher knows (2)"), std::string::npos) << err_;
}

}  // namespace
}  // namespace simpleci::dispatcher
