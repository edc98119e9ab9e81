// simpleci-runner: flags, logging, signals and the poll loop; the logic is in runner.cpp.
#include <git2.h>
#include <unistd.h>

#include <filesystem>

#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include "app/cli.h"
#include "net/curve.h"
#include "net/dealer.h"
#include "git/git.h"
#include "net/endpoint.h"
#include "common/logging.h"
#include "common/signals.h"
#include "net/transport.h"
#include "messages/validate.h"
#include "runner/runner.h"
#include "runner/trust.h"

using namespace simpleci;

namespace {
int run_main(int argc, char** argv) {
  const std::string prog = "simpleci-runner";
  CLI::App app{"simpleCI runner: runs the tests of the commits the dispatcher hands it"};
  std::string name, repo_url, clone_dir;
  std::string log_dir = kDefaultLogDir, log_level = "info";
  cli::ConnectFlags conn_flags;
  std::string test_command{msg::kDefaultTestCommand};
  int64_t jobs = 1, grace_ms = 10000;
  bool insecure = false;
  conn_flags.add(app, "this runner");
  app.add_option("--name", name, "runner name (default HOSTNAME-PID)");
  app.add_option("--jobs", jobs, "jobs run at once, each in its own checkout (1..256)");
  app.add_option("--repo", repo_url, "clone this URL into CLONE_DIR when it does not exist");
  app.add_option("--kill-grace-ms", grace_ms, "SIGTERM to SIGKILL delay for timeouts and cancels");
  app.add_option("--test-command", test_command,
                 "command for commits without .simpleci/test when the dispatcher is not authenticated");
  app.add_flag("--insecure", insecure, "allow plain text to a non-loopback dispatcher");
  app.add_option("--log-dir", log_dir, "folder for runner-NAME.log");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error|off");
  app.add_option("CLONE_DIR", clone_dir, "the runner's clone of the repository")->required();
  int code = 0;
  if (!cli::parse(app, argc, argv, prog, &code)) return code;

  if (!cli::in_range(prog, "--jobs", jobs, 1, 256) ||
      !cli::in_range(prog, "--kill-grace-ms", grace_ms, 0, 600000)) {
    return cli::kUsageError;
  }
  if (!is_valid_text(test_command, msg::kMaxCommandLen) || test_command.empty()) {
    return cli::fail(prog, "--test-command must be 1..4096 bytes without NUL", cli::kUsageError);
  }
  std::string err, endpoint, server_key, secret_key;
  if (!conn_flags.resolve(prog, &endpoint, &server_key, &secret_key, &code)) return code;
  const bool curve = !server_key.empty();
  if (std::string why = runner::refuse_plain_text(endpoint, curve, insecure); !why.empty()) {
    return cli::fail(prog, why, cli::kUsageError);
  }
  if (name.empty()) {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    name = std::string(host) + "-" + std::to_string(::getpid());
    for (char& c : name) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') c = '-';
    }
    if (name.size() > msg::kMaxNameLen) name = name.substr(name.size() - msg::kMaxNameLen);
  }
  if (!is_safe_name(name)) {
    return cli::fail(prog, "--name must be 1-64 of A-Z a-z 0-9 . _ - (not starting with . or -), got '" + name + "'",
                     cli::kUsageError);
  }
  git_libgit2_init();
  if (!runner::open_or_clone(clone_dir, repo_url, &err)) return cli::fail(prog, err, cli::kRuntimeError);
  clone_dir = std::filesystem::absolute(clone_dir).lexically_normal().string();
  // Slot clones live under CLONE_DIR/.git, so this covers them too.
  int stale_locks = git::remove_stale_locks(clone_dir);
  if (!setup_logging("runner-" + name, log_dir, log_level, &err)) {
    return cli::fail(prog, err, cli::kUsageError);
  }
  int sfd = make_signal_fd();
  if (sfd < 0) return cli::fail(prog, "cannot set up signal handling", cli::kRuntimeError);

  zmq::context_t ctx(1);
  net::DealerConnection conn(ctx, endpoint, server_key, secret_key);
  SystemClock clock;
  runner::ProcessExecutor exec(clock, static_cast<int>(grace_ms));
  runner::GitWorkspace ws(clone_dir);
  runner::Options opt{name, static_cast<uint32_t>(jobs),
                      std::filesystem::path(clone_dir) / ".git" / "simpleci"};
  opt.test_command = test_command;
  const runner::DispatcherTrust trust = runner::judge_dispatcher(endpoint, curve, ::geteuid());
  opt.trust_wire_command = trust.authenticated;
  runner::Runner r(clock, conn, exec, ws, opt);
  if (!r.start(&err)) return cli::fail(prog, err, cli::kRuntimeError);
  spdlog::info("runner {} for {} connecting to {} ({} slot(s))", name, clone_dir, endpoint, jobs);
  if (runner::plain_text_to_another_machine(endpoint, curve)) {
    spdlog::warn("--insecure: talking plain text to {}; anyone on the path can read the results "
                 "and pose as the dispatcher", endpoint);
  }
  if (trust.authenticated) {
    spdlog::info("the dispatcher is authenticated ({}): running the test command it sends", trust.why);
  } else {
    spdlog::info("the dispatcher is not authenticated ({}): commits without .simpleci/test run "
                 "this runner's --test-command '{}'", trust.why, test_command);
  }
  if (stale_locks > 0) spdlog::warn("removed {} stale git lock file(s) left by an earlier run", stale_locks);

  int signals = 0;
  while (!r.done()) {
    std::vector<zmq::pollitem_t> items = {{conn.socket().handle(), 0, ZMQ_POLLIN, 0},
                                          {nullptr, sfd, ZMQ_POLLIN, 0},
                                          {nullptr, r.checkout_fd(), ZMQ_POLLIN, 0}};
    for (int fd : exec.fds()) items.push_back({nullptr, fd, ZMQ_POLLIN, 0});
    try {
      zmq::poll(items.data(), items.size(), r.next_wakeup());
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) spdlog::warn("poll: {}", e.what());
    }
    if (items[1].revents & ZMQ_POLLIN) {
      int sig = read_signal(sfd);
      if (++signals > 1) {
        spdlog::warn("second signal ({}): stopping now; running tests are killed", sig);
        return 0;
      }
      r.drain();
    }
    if (items[2].revents & ZMQ_POLLIN) r.collect_checkouts();
    for (int n = 0; n < 256; ++n) {
      auto m = net::recv(conn.socket(), true, 2);
      if (!m) break;
      if (m->frames.size() != 2) continue;
      r.on_frames(std::string(net::view(m->frames[0])), std::string(net::view(m->frames[1])));
    }
    r.tick();
  }
  spdlog::info("drained; exiting");
  return 0;
}
}  // namespace

int main(int argc, char** argv) { return simpleci::cli::guarded_main("simpleci-runner", run_main, argc, argv); }
