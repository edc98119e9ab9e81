#include "common/fsutil.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "common/clock.h"
#include "common/logging.h"

namespace simpleci {
namespace {

std::filesystem::path temp_dir() {
  char tmpl[] = "/tmp/simpleci-fsutil-XXXXXX";
  return std::filesystem::path(mkdtemp(tmpl));
}

TEST(FsUtil, AtomicWriteReplacesWholeFile) {
  const auto dir = temp_dir();
  std::string err, got;
  ASSERT_TRUE(write_file_atomic(dir / "f", "one", false, &err)) << err;
  ASSERT_TRUE(write_file_atomic(dir / "f", "two-two", true, &err)) << err;
  ASSERT_TRUE(read_file(dir / "f", 100, &got, &err)) << err;
  EXPECT_EQ(got, "two-two");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir),
                          std::filesystem::directory_iterator()),
            1);  // no temp files left behind
  std::filesystem::remove_all(dir);
}

TEST(FsUtil, ReadRefusesOversizedFiles) {
  const auto dir = temp_dir();
  std::string err, got;
  ASSERT_TRUE(write_file_atomic(dir / "f", std::string(100, 'x'), false, &err));
  EXPECT_FALSE(read_file(dir / "f", 99, &got, &err));
  EXPECT_NE(err.find("larger than 99 bytes"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(FsUtil, WriteIntoMissingFolderFailsCleanly) {
  std::string err;
  EXPECT_FALSE(write_file_atomic("/nonexistent-simpleci/f", "x", false, &err));
  EXPECT_NE(err.find("cannot create"), std::string::npos);
}

TEST(Clock, IsoFormat) { EXPECT_EQ(iso8601_utc(1767225600123), "2026-01-01T00:00:00.123Z"); }

TEST(LogLimiter, HoldsBackFloodsAndCountsThem) {
  FakeClock clock;
  LogLimiter lim(2, std::chrono::seconds(1));
  uint64_t suppressed = 99;
  EXPECT_TRUE(lim.allow(clock.now(), &suppressed));
  EXPECT_EQ(suppressed, 0u);
  EXPECT_TRUE(lim.allow(clock.now(), &suppressed));
  EXPECT_FALSE(lim.allow(clock.now(), &suppressed));
  EXPECT_FALSE(lim.allow(clock.now(), &suppressed));
  clock.advance(std::chrono::seconds(1));
  EXPECT_TRUE(lim.allow(clock.now(), &suppressed));
  EXPECT_EQ(suppressed, 2u);
}

}  // namespace
}  // namespace simpleci
