#include <gtest/gtest.h>

#include "runner/capture.h"

namespace simpleci::runner {
namespace {

TEST(OutputCapture, KeepsEverythingUnderTheCap) {
  OutputCapture c(1024);
  c.append("hello ");
  c.append("world");
  EXPECT_FALSE(c.truncated());
  EXPECT_EQ(c.result(), "hello world");
}

TEST(OutputCapture, KeepsHeadAndTailWithAMarkerWhenOverTheCap) {
  OutputCapture c(1024);
  std::string all;
  for (int i = 0; i < 5000; ++i) {
    std::string piece = std::to_string(i) + ",";
    all += piece;
    c.append(piece);
  }
  EXPECT_TRUE(c.truncated());
  std::string r = c.result();
  EXPECT_LE(r.size(), 1024u);
  EXPECT_EQ(r.substr(0, 512), all.substr(0, 512));
  size_t tail = 1024 - 512 - 128;
  EXPECT_EQ(r.substr(r.size() - tail), all.substr(all.size() - tail));
  EXPECT_NE(r.find("[simpleci: output truncated, " + std::to_string(all.size() - 512 - tail) +
                   " bytes omitted]"),
            std::string::npos);
}

TEST(OutputCapture, OneHugeWriteKeepsOnlyItsEnd) {
  OutputCapture c(2048);
  std::string big(100000, 'x');
  big.replace(big.size() - 3, 3, "end");
  c.append(big);
  EXPECT_EQ(c.total(), 100000u);
  EXPECT_TRUE(c.result().ends_with("end"));
}

TEST(LiveBacklog, HandsOutBytesInOrderWithTheirOffset) {
  LiveBacklog b(100);
  b.append("hello ");
  b.append("world");
  EXPECT_EQ(b.front(5), "hello");
  b.pop(6);
  EXPECT_EQ(b.offset(), 6u);
  EXPECT_EQ(b.front(100), "world");
  b.pop(5);
  EXPECT_EQ(b.size(), 0u);
  EXPECT_EQ(b.offset(), 11u);
}

TEST(LiveBacklog, MoreThanTheLimitSkipsTheOldestUnsent) {
  LiveBacklog b(10);
  b.append("0123456");
  b.pop(2);
  b.append("789abc");  // 11 unsent: "2" goes
  EXPECT_EQ(b.offset(), 3u);
  EXPECT_EQ(b.front(100), "3456789abc");
  b.append(std::string(25, 'z'));  // bigger than the limit on its own: its last 10 bytes stay
  EXPECT_EQ(b.offset(), 28u);
  EXPECT_EQ(b.front(100), std::string(10, 'z'));
}

TEST(OutputCapture, StreamsEverythingAndStillStoresHeadAndTail) {
  OutputCapture c(1024, 1 << 20);
  std::string all;
  for (int i = 0; i < 5000; ++i) all += std::to_string(i) + ",";
  c.append(all);
  EXPECT_EQ(c.live().front(all.size()), all);
  EXPECT_TRUE(c.truncated());
  EXPECT_LE(c.result().size(), 1024u);
}

}  // namespace
}  // namespace simpleci::runner
