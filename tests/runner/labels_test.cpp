// A runner's labels from made-up machines: no uname, no hostname of the machine running the test.
#include <gtest/gtest.h>

#include "messages/limits.h"
#include "runner/labels.h"

namespace simpleci::runner {
namespace {

using Labels = std::vector<std::string>;

TEST(Labels, AutomaticOnesNameTheOsTheMachineItsDebianNameAndTheHost) {
  EXPECT_EQ(automatic_labels({"Linux", "x86_64", "build-3.example.org"}),
            (Labels{"linux", "x86_64", "amd64", "host-build-3"}));
  EXPECT_EQ(automatic_labels({"Linux", "aarch64", "pi"}), (Labels{"linux", "aarch64", "arm64", "host-pi"}));
  EXPECT_EQ(automatic_labels({"Linux", "armv7l", "pi"}), (Labels{"linux", "armv7l", "armhf", "host-pi"}));
  EXPECT_EQ(automatic_labels({"Linux", "i686", "old"}), (Labels{"linux", "i686", "i386", "host-old"}));
  // Where Debian uses the same name there is no second one.
  EXPECT_EQ(automatic_labels({"Linux", "riscv64", "v"}), (Labels{"linux", "riscv64", "host-v"}));
  EXPECT_EQ(automatic_labels({"Linux", "s390x", "z"}), (Labels{"linux", "s390x", "host-z"}));
}

TEST(Labels, AHostNameIsMadeASafeName) {
  EXPECT_EQ(automatic_labels({"Linux", "x86_64", "Jo's box!.lan"}).back(), "host-Jo-s-box-");
  const std::string long_host(100, 'h');
  const std::string label = automatic_labels({"Linux", "x86_64", long_host}).back();
  EXPECT_EQ(label, "host-" + std::string(msg::kMaxNameLen - 5, 'h'));
  // No host name, no host label; a host name starting with '.' is cut to nothing.
  EXPECT_EQ(automatic_labels({"Linux", "x86_64", ""}), (Labels{"linux", "x86_64", "amd64"}));
  EXPECT_EQ(automatic_labels({"Linux", "x86_64", ".local"}), (Labels{"linux", "x86_64", "amd64"}));
  EXPECT_EQ(automatic_labels({"GNU/kFreeBSD", "x86_64", ""}), (Labels{"gnu-kfreebsd", "x86_64", "amd64"}));
}

TEST(Labels, GivenLabelsFollowTheAutomaticOnesWithoutDuplicates) {
  Labels out;
  std::string err;
  ASSERT_TRUE(runner_labels("gpu,linux,gpu,big-mem", {"Linux", "x86_64", "b1"}, true, &out, &err)) << err;
  EXPECT_EQ(out, (Labels{"linux", "x86_64", "amd64", "host-b1", "gpu", "big-mem"}));
  ASSERT_TRUE(runner_labels("gpu", {"Linux", "x86_64", "b1"}, false, &out, &err)) << err;
  EXPECT_EQ(out, (Labels{"gpu"}));
  ASSERT_TRUE(runner_labels("", {"Linux", "x86_64", "b1"}, false, &out, &err)) << err;
  EXPECT_TRUE(out.empty());
}

TEST(Labels, ABadLabelIsRefusedWithOneLine) {
  Labels out{"kept"};
  std::string err;
  const MachineFacts m{"Linux", "x86_64", "b1"};
  EXPECT_FALSE(runner_labels("gpu,,arm64", m, true, &out, &err));
  EXPECT_EQ(err, "--labels: '' is not a label (1-64 of A-Z a-z 0-9 . _ -, not starting with . or -) in 'gpu,,arm64'");
  EXPECT_FALSE(runner_labels("gpu,", m, true, &out, &err));
  EXPECT_FALSE(runner_labels("-x", m, true, &out, &err));
  EXPECT_FALSE(runner_labels("has space", m, true, &out, &err));
  EXPECT_FALSE(runner_labels(std::string(65, 'a'), m, true, &out, &err));
  EXPECT_EQ(out, (Labels{"kept"}));
}

TEST(Labels, AtMostThirtyTwoInAll) {
  std::string given;
  for (int i = 0; i < 28; ++i) given += (i ? "," : "") + std::string("l") + std::to_string(i);
  Labels out;
  std::string err;
  const MachineFacts m{"Linux", "x86_64", "b1"};
  ASSERT_TRUE(runner_labels(given, m, true, &out, &err)) << err;  // 4 automatic + 28
  EXPECT_EQ(out.size(), msg::kMaxLabels);
  EXPECT_FALSE(runner_labels(given + ",one-more", m, true, &out, &err));
  EXPECT_EQ(err, "--labels: a runner has at most 32 labels, the automatic ones included; this one would have 33");
  ASSERT_TRUE(runner_labels(given + ",one-more", m, false, &out, &err)) << err;
}

}  // namespace
}  // namespace simpleci::runner
