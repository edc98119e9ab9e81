// Whom the runner believes: CURVE, private ipc:// sockets, and plain text.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "runner/trust.h"

namespace simpleci::runner {
namespace {

class TrustTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/simpleci-trust-XXXXXX";
    dir_ = ::mkdtemp(tmpl);  // mode 0700, ours
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(TrustTest, CurveIsAuthenticatedWhateverTheEndpoint) {
  EXPECT_TRUE(judge_dispatcher("tcp://10.1.2.3:8888", true, ::geteuid()).authenticated);
}

TEST_F(TrustTest, PlainTcpIsNeverAuthenticatedEvenOnLoopback) {
  auto t = judge_dispatcher("tcp://127.0.0.1:8888", false, ::geteuid());
  EXPECT_FALSE(t.authenticated);
  EXPECT_NE(t.why.find("plain-text"), std::string::npos) << t.why;
}

TEST_F(TrustTest, IpcSocketInAPrivateFolderIsAuthenticated) {
  EXPECT_TRUE(judge_dispatcher("ipc://" + dir_ + "/d.sock", false, ::geteuid()).authenticated);
}

TEST_F(TrustTest, IpcSocketInAFolderOthersMayWriteIsNot) {
  ASSERT_EQ(::chmod(dir_.c_str(), 0777), 0);
  auto t = judge_dispatcher("ipc://" + dir_ + "/d.sock", false, ::geteuid());
  EXPECT_FALSE(t.authenticated);
  EXPECT_NE(t.why.find("writable by other users"), std::string::npos) << t.why;
  ASSERT_EQ(::chmod(dir_.c_str(), 0720), 0);
  EXPECT_FALSE(judge_dispatcher("ipc://" + dir_ + "/d.sock", false, ::geteuid()).authenticated);
}

TEST_F(TrustTest, IpcSocketInAMissingFolderIsNot) {
  std::string why;
  EXPECT_FALSE(private_socket_dir(dir_ + "/missing/d.sock", ::geteuid(), &why));
  EXPECT_NE(why.find("cannot inspect"), std::string::npos) << why;
}

TEST_F(TrustTest, IpcSocketInAnotherUsersFolderIsNot) {
  std::string why;
  uid_t runner_uid = ::geteuid() + 4242;  // a folder of ours is someone else's to that runner
  if (::geteuid() == 0) {
    // A folder of root's counts as private (root could do anything anyway): give it away.
    ASSERT_EQ(::chown(dir_.c_str(), 4242, 4242), 0);
    runner_uid = 0;
  }
  EXPECT_FALSE(private_socket_dir(dir_ + "/d.sock", runner_uid, &why));
  EXPECT_NE(why.find("belongs to uid"), std::string::npos) << why;
}

TEST_F(TrustTest, PlainTextToAnotherMachineNeedsInsecure) {
  EXPECT_EQ(refuse_plain_text("tcp://127.0.0.1:8888", false, false), "");
  EXPECT_EQ(refuse_plain_text("tcp://localhost:8888", false, false), "");
  EXPECT_EQ(refuse_plain_text("ipc:///run/simpleci/d.sock", false, false), "");
  EXPECT_EQ(refuse_plain_text("tcp://10.1.2.3:8888", true, false), "");
  EXPECT_EQ(refuse_plain_text("tcp://10.1.2.3:8888", false, true), "");
  std::string why = refuse_plain_text("tcp://10.1.2.3:8888", false, false);
  EXPECT_NE(why.find("refusing plain-text connection to tcp://10.1.2.3:8888"), std::string::npos) << why;
}

}  // namespace
}  // namespace simpleci::runner
