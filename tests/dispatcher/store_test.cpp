// The SQLite store on a real temporary file: what is committed survives a reopen, what is not
// committed does not.
#include <filesystem>

#include <gtest/gtest.h>

#include "dispatcher/store.h"

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
    ASSERT_TRUE(s.requeue(c, s.min_queue_pos() - 1, &err_));  // c jumps ahead of b
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
  std::optional<JobRow> latest;
  ASSERT_TRUE(s.latest_for_commit(kA, &latest, &err_)) << err_;
  ASSERT_TRUE(latest);
  EXPECT_EQ(latest->summary.exit_code, 2);
  std::string got;
  ASSERT_TRUE(s.output(a, &got, &err_));
  EXPECT_EQ(got, output);
}

TEST_F(StoreTest, OpeningAFolderFailsWithAClearError) {
  Store s;
  EXPECT_FALSE(s.open(dir_.string(), &err_));
  EXPECT_NE(err_.find(dir_.string()), std::string::npos) << err_;
}

}  // namespace
}  // namespace simpleci::dispatcher
