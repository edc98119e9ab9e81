// simpleci-runner: flags, logging, signals and the poll loop; the logic is in runner.cpp.
#include <git2.h>
#include <unistd.h>

#include <filesystem>

#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include "app/component.h"
#include "git/git.h"
#include "messages/limits.h"
#include "messages/validate.h"
#include "runner/runner.h"
#include "runner/trust.h"

using namespace simpleci;

namespace {

struct Flags {
  std::string name, repo_url, clone_dir;
  cli::ConnectFlags conn;
  std::string test_command{msg::kDefaultTestCommand};
  int64_t jobs = 1, grace_ms = msg::kDefaultKillGraceMs;
  bool insecure = false;
  cli::Dispatcher dispatcher;  // from conn, checked
};

void add_flags(app::Component& c, Flags& f) {
  CLI::App& app = c.flags();
  f.conn.add(app, "this runner");
  app.add_option("--name", f.name, "runner name (default HOSTNAME-PID)");
  c.add_ranged("--jobs", f.jobs, "jobs run at once, each in its own checkout", 1, msg::kMaxCapacity);
  app.add_option("--repo", f.repo_url, "clone this URL into CLONE_DIR when it does not exist");
  c.add_ranged("--kill-grace-ms", f.grace_ms, "SIGTERM to SIGKILL delay for timeouts and cancels", 0,
               msg::kMaxKillGraceMs);
  app.add_option("--test-command", f.test_command,
                 "command for commits without .simpleci/test when the dispatcher is not authenticated");
  app.add_flag("--insecure", f.insecure, "allow plain text to a non-loopback dispatcher");
  app.add_option("CLONE_DIR", f.clone_dir, "the runner's clone of the repository")->required();
}

// HOSTNAME-PID, made a safe name (PROTOCOL.md): other characters become '-', the tail is kept.
std::string default_name() {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  std::string name = std::string(host) + "-" + std::to_string(::getpid());
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') c = '-';
  }
  if (name.size() > msg::kMaxNameLen) name = name.substr(name.size() - msg::kMaxNameLen);
  return name;
}

// The checks beyond ranges; all usage errors.
app::Stop check(const app::Component& c, Flags& f) {
  if (auto stop = cli::check_test_command(c.program(), f.test_command)) return stop;
  if (auto stop = f.conn.resolve(c.program(), &f.dispatcher)) return stop;
  const std::string why = runner::refuse_plain_text(f.dispatcher.endpoint, f.dispatcher.curve(), f.insecure);
  if (!why.empty()) return c.fail(why, cli::kUsageError);
  if (f.name.empty()) f.name = default_name();
  if (!is_safe_name(f.name)) {
    return c.fail("--name must be 1-" + std::to_string(msg::kMaxNameLen) +
                      " of A-Z a-z 0-9 . _ - (not starting with . or -), got '" + f.name + "'",
                  cli::kUsageError);
  }
  return std::nullopt;
}

// What the runner says about itself once it runs.
void log_start(const Flags& f, const runner::DispatcherTrust& trust, int stale_locks) {
  const std::string& endpoint = f.dispatcher.endpoint;
  spdlog::info("runner {} for {} connecting to {} ({} slot(s))", f.name, f.clone_dir, endpoint, f.jobs);
  if (runner::plain_text_to_another_machine(endpoint, f.dispatcher.curve())) {
    spdlog::warn("--insecure: talking plain text to {}; anyone on the path can read the results "
                 "and pose as the dispatcher", endpoint);
  }
  if (trust.authenticated) {
    spdlog::info("the dispatcher is authenticated ({}): running the test command it sends", trust.why);
  } else {
    spdlog::info("the dispatcher is not authenticated ({}): commits without .simpleci/test run "
                 "this runner's --test-command '{}'", trust.why, f.test_command);
  }
  if (stale_locks > 0) spdlog::warn("removed {} stale git lock file(s) left by an earlier run", stale_locks);
}

// SIGTERM/SIGINT drains (finish the running jobs, take no new ones); a second one stops now.
app::PeerLoop loop_of(runner::Runner& r, runner::ProcessExecutor& exec) {
  app::PeerLoop loop = app::loop_of(r, [&r, signals = 0](int sig) mutable {
    if (++signals == 1) {
      r.drain();
      return true;
    }
    spdlog::warn("second signal ({}): stopping now; running tests are killed", sig);
    return false;
  });
  loop.done = [&r] { return r.done(); };
  loop.fds = [&r, &exec] {
    std::vector<int> fds = exec.fds();
    fds.push_back(r.checkout_fd());
    return fds;
  };
  loop.on_fd = [&r](int fd) {
    if (fd == r.checkout_fd()) r.collect_checkouts();
  };
  return loop;
}

int run(app::Component& c, const Flags& f, const std::string& supervisor, int stale_locks) {
  zmq::context_t ctx(1);
  net::DealerConnection conn(ctx, f.dispatcher.endpoint, f.dispatcher.server_key, f.dispatcher.secret_key);
  SystemClock clock;
  runner::ProcessExecutor exec(clock, static_cast<int>(f.grace_ms), supervisor);
  runner::GitWorkspace ws(f.clone_dir);
  runner::Options opt{f.name, static_cast<uint32_t>(f.jobs), std::filesystem::path(f.clone_dir) / ".git" / "simpleci"};
  opt.test_command = f.test_command;
  const runner::DispatcherTrust trust =
      runner::judge_dispatcher(f.dispatcher.endpoint, f.dispatcher.curve(), ::geteuid());
  opt.trust_wire_command = trust.authenticated;
  runner::Runner r(clock, conn, exec, ws, opt);
  std::string err;
  if (!r.start(&err)) return c.fail(err, cli::kRuntimeError);
  log_start(f, trust, stale_locks);
  if (app::run_peer_loop(conn, c.signal_fd(), loop_of(r, exec)) == app::LoopEnd::kDone) {
    if (!r.version_error().empty()) {
      spdlog::error("{}", r.version_error());
      return c.fail(r.version_error(), cli::kRuntimeError);
    }
    spdlog::info("drained; exiting");
  }
  return 0;
}

int run_main(int argc, char** argv) {
  app::Component c("simpleci-runner", "simpleCI runner: runs the tests of the commits the dispatcher hands it",
                   "runner-NAME.log");
  Flags f;
  add_flags(c, f);
  if (auto stop = c.parse(argc, argv, [&] { return check(c, f); })) return *stop;
  std::string err;
  const std::string supervisor = runner::supervisor_beside("/proc/self/exe", &err);
  if (supervisor.empty()) return c.fail(err, cli::kRuntimeError);
  git_libgit2_init();
  // Slot repositories stay open from job to job, and libgit2's object cache (256 MB by default,
  // shared by all of them) would keep growing with every tree checked out: a few trees is all
  // a checkout reuses.
  git_libgit2_opts(GIT_OPT_SET_CACHE_MAX_SIZE, static_cast<ssize_t>(16) << 20);
  if (!runner::open_or_clone(f.clone_dir, f.repo_url, &err)) return c.fail(err, cli::kRuntimeError);
  f.clone_dir = std::filesystem::absolute(f.clone_dir).lexically_normal().string();
  // Slot clones live under CLONE_DIR/.git, so this covers them too.
  const int stale_locks = git::remove_stale_locks(f.clone_dir);
  if (auto stop = c.start("runner-" + f.name)) return *stop;
  return run(c, f, supervisor, stale_locks);
}

}  // namespace

int main(int argc, char** argv) { return cli::guarded_main("simpleci-runner", run_main, argc, argv); }
