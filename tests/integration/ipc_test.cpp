// The dispatcher on a Unix socket (ipc://): the whole pipeline works over it, and the socket's
// folder, made 0700, keeps every other user out, so none can register or forge a result.
#include <grp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <zmq.hpp>

#include "messages/codec.h"
#include "net/transport.h"
#include "tests/integration/cluster.h"

namespace simpleci::itest {
namespace {

using namespace std::chrono_literals;

constexpr uid_t kNobody = 65534;

mode_t mode_of(const fs::path& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 ? st.st_mode & 07777 : 0;
}

// What the attacker saw, as its exit code.
enum Outcome : int {
  kShutOut = 0,        // connect(2) failed with EACCES and ZeroMQ got no answer
  kCouldConnect = 10,  // connect(2) to the socket succeeded
  kGotAnswer = 11,     // the dispatcher answered its REGISTER or RESULT
  kCannotDrop = 12,    // could not become nobody
  kOtherError = 13,
};

// In a child that has become nobody: tries to reach the socket directly, then as a runner
// "evil" that reports job 1 as passed. Never returns.
[[noreturn]] void attack(const std::string& socket_path, const std::string& endpoint) {
  if (::setgroups(0, nullptr) != 0 || ::setresgid(kNobody, kNobody, kNobody) != 0 ||
      ::setresuid(kNobody, kNobody, kNobody) != 0 || ::geteuid() != kNobody) {
    ::_exit(kCannotDrop);
  }
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket_path.c_str(), sizeof addr.sun_path - 1);
  const int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  const int why = errno;
  ::close(fd);
  if (rc == 0) ::_exit(kCouldConnect);
  if (why != EACCES) ::_exit(kOtherError);
  try {
    zmq::context_t ctx(1);
    zmq::socket_t s = net::make_dealer(ctx, endpoint);
    net::send(s, msg::Register{"evil", 1, {}});
    net::send(
        s, msg::Result{1, 1, msg::JobStatus::kPassed, 0, 1, 2, false, std::string(1 << 20, 'x')});
    zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    // Any answer (WELCOME, ERROR, REREGISTER) would mean the dispatcher heard us.
    const bool answered = zmq::poll(&item, 1, std::chrono::milliseconds(2000)) > 0;
    ::_exit(answered ? kGotAnswer : kShutOut);
  } catch (...) {
    ::_exit(kOtherError);
  }
}

// Runs attack() in a child process and returns its exit code (-1 when it did not end in time).
int attack_as_nobody(const std::string& socket_path, const std::string& endpoint) {
  const pid_t pid = ::fork();
  if (pid == 0) attack(socket_path, endpoint);
  int status = 0;
  const bool ended = wait_until([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, 20s);
  if (!ended) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(Ipc, PipelineRunsOverAUnixSocket) {
  Cluster c;
  const fs::path dir = c.root() / "run";  // missing: the dispatcher makes it 0700
  const std::string ep = "ipc://" + (dir / "dispatcher.sock").string();
  ASSERT_TRUE(c.start_dispatcher(ep)) << c.logs();
  EXPECT_EQ(c.endpoint(), ep);
  EXPECT_EQ(mode_of(dir), 0700u);
  // A second dispatcher on the same socket is refused, as a second TCP bind would be.
  RunResult twice = run({bin("simpleci-dispatcher"), "--bind", ep, "--state-dir",
                         (c.root() / "state2").string(), "--log-dir", (c.root() / "logs2").string(),
                         "--results-dir", (c.root() / "results2").string()},
                        {}, 10s);
  EXPECT_EQ(twice.exit_code, 1);
  EXPECT_EQ(twice.output, "simpleci-dispatcher: cannot bind " + ep +
                              ": another process is listening on it\n");
  c.start_runner("local", 1);
  c.start_observer(100);
  std::string id = c.upstream().commit({{".simpleci/test", script(0, "echo over-ipc")}}, "ipc");
  auto r = c.wait_result(id, 30s);
  ASSERT_TRUE(r) << c.logs();
  EXPECT_EQ((*r)["status"], "passed");
  EXPECT_EQ((*r)["runner"], "local");
  RunResult st = run({bin("simpleci"), "results", id, "--dispatcher", ep});
  EXPECT_EQ(st.exit_code, 0) << st.output;
  EXPECT_NE(st.output.find("passed"), std::string::npos) << st.output;
}

TEST(Ipc, AnotherUserCannotRegisterNorForgeAResult) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run the attacker as another user";
  Cluster c;
  // Everything up to the socket's folder is open to all, so only that folder keeps nobody out;
  // the socket itself is opened to all as a umask of 0 would leave it.
  fs::permissions(c.root(), fs::perms(0755));
  const fs::path dir = c.root() / "run";
  const fs::path sock = dir / "dispatcher.sock";
  const std::string ep = "ipc://" + sock.string();
  ASSERT_TRUE(c.start_dispatcher(ep)) << c.logs();
  ASSERT_EQ(::chmod(sock.c_str(), 0777), 0);
  std::string id = c.upstream().commit({{".simpleci/test", script(0, "echo honest")}}, "target");
  RunResult sub = run({bin("simpleci"), "submit", id, "--dispatcher", ep});
  ASSERT_EQ(sub.exit_code, 0) << sub.output << c.logs();

  EXPECT_EQ(attack_as_nobody(sock.string(), ep), kShutOut) << c.logs();
  auto st = query_status(ep);
  ASSERT_TRUE(st);
  EXPECT_TRUE(st->runners.empty());
  EXPECT_EQ(st->queue_length, 1u) << "the job is still waiting for a real runner";
  EXPECT_FALSE(read_result(c.results_dir(), id).has_value());

  // A runner of the dispatcher's own user gets the job and reports it.
  c.start_runner("honest", 1);
  auto r = c.wait_result(id, 30s);
  ASSERT_TRUE(r) << c.logs();
  EXPECT_EQ((*r)["status"], "passed");
  EXPECT_EQ((*r)["runner"], "honest");
  EXPECT_NE(read_text(c.results_dir() / id).find("honest"), std::string::npos);
}

TEST(Ipc, ControlAnOpenFolderLetsTheAttackerIn) {
  // Shows the attacker above really tries: with the folder opened to all, it gets through.
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run the attacker as another user";
  Cluster c;
  fs::permissions(c.root(), fs::perms(0755));
  const fs::path sock = c.root() / "run" / "dispatcher.sock";
  ASSERT_TRUE(c.start_dispatcher("ipc://" + sock.string())) << c.logs();
  ASSERT_EQ(::chmod(sock.parent_path().c_str(), 0755), 0);
  ASSERT_EQ(::chmod(sock.c_str(), 0777), 0);
  EXPECT_EQ(attack_as_nobody(sock.string(), c.endpoint()), kCouldConnect);
}

TEST(Ipc, RefusesASocketFolderOthersCanChange) {
  TempDir tmp;
  auto bind = [&](const fs::path& dir) {
    return run({bin("simpleci-dispatcher"), "--bind", "ipc://" + (dir / "d.sock").string(),
                "--state-dir", (tmp.path() / "state").string(), "--results-dir",
                (tmp.path() / "results").string(), "--log-dir", (tmp.path() / "logs").string()},
               {}, 10s);
  };
  const fs::path open = tmp.path() / "open";
  fs::create_directories(open);
  fs::permissions(open, fs::perms(0777));
  RunResult r = bind(open);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.output, "simpleci-dispatcher: the ipc socket folder '" + open.string() +
                          "' is writable by group or others (mode 0777); run chmod 700 " +
                          open.string() + "\n");
  if (::geteuid() == 0) {
    const fs::path theirs = tmp.path() / "theirs";
    fs::create_directories(theirs);
    fs::permissions(theirs, fs::perms(0700));
    ASSERT_EQ(::chown(theirs.c_str(), kNobody, kNobody), 0);
    r = bind(theirs);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.output.find("belongs to uid 65534"), std::string::npos) << r.output;
  }
  r = run({bin("simpleci-dispatcher"), "--bind", "ipc://"}, {}, 10s);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("ipc://PATH"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace simpleci::itest
