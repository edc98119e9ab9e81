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

}  // namespace
}  // namespace simpleci::runner
