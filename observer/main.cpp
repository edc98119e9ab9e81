// simpleci-observer: flags, logging, signals and the poll loop; the logic is in observer.cpp.
#include <git2.h>

#include <filesystem>

#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include "app/cli.h"
#include "net/curve.h"
#include "net/dealer.h"
#include "git/git.h"
#include "net/endpoint.h"
#include "common/fsutil.h"
#include "common/logging.h"
#include "common/signals.h"
#include "net/transport.h"
#include "messages/validate.h"
#include "observer/git_watch.h"
#include "observer/observer.h"

using namespace simpleci;

namespace {
int run_main(int argc, char** argv) {
  const std::string prog = "simpleci-observer";
  CLI::App app{"simpleCI observer: sends every new commit of its clone's origin to the dispatcher"};
  std::string clone_dir, state_file;
  std::string log_dir = kDefaultLogDir, log_level = "info";
  cli::ConnectFlags conn_flags;
  std::vector<std::string> branches;
  int64_t poll_ms = 1000;
  conn_flags.add(app, "this observer");
  app.add_option("--poll-ms", poll_ms, "how often to fetch origin (10..3600000)");
  app.add_option("--branch", branches, "branch to watch (repeatable; default: the clone's branch)");
  app.add_option("--state-file", state_file, "cursor file (default CLONE_DIR/.git/simpleci/observer-state)");
  app.add_option("--log-dir", log_dir, "folder for observer.log");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error|off");
  app.add_option("CLONE_DIR", clone_dir, "the observer's clone of the repository")->required();
  int code = 0;
  if (!cli::parse(app, argc, argv, prog, &code)) return code;
  if (!cli::in_range(prog, "--poll-ms", poll_ms, 10, 3600000)) return cli::kUsageError;
  std::string err, endpoint, server_key, secret_key;
  if (!conn_flags.resolve(prog, &endpoint, &server_key, &secret_key, &code)) return code;
  for (const auto& b : branches) {
    if (b.empty() || !is_valid_branch(b)) return cli::fail(prog, "--branch: not a valid branch name: '" + b + "'", cli::kUsageError);
  }
  git_libgit2_init();
  std::error_code ec;
  if (!std::filesystem::exists(clone_dir, ec)) {
    return cli::fail(prog, "clone folder does not exist: " + clone_dir, cli::kRuntimeError);
  }
  if (!observer::check_clone(clone_dir, &err)) return cli::fail(prog, err, cli::kRuntimeError);
  int stale_locks = git::remove_stale_locks(clone_dir);
  if (branches.empty()) {
    std::string b = observer::current_branch(clone_dir, &err);
    if (b.empty()) return cli::fail(prog, err, cli::kRuntimeError);
    branches.push_back(b);
  }
  if (state_file.empty()) {
    state_file = (std::filesystem::path(clone_dir) / ".git" / "simpleci" / "observer-state").string();
  }
  if (!ensure_writable_dir(std::filesystem::path(state_file).parent_path().empty()
                               ? "."
                               : std::filesystem::path(state_file).parent_path(),
                           &err)) {
    return cli::fail(prog, err, cli::kRuntimeError);
  }
  if (!setup_logging("observer", log_dir, log_level, &err)) return cli::fail(prog, err, cli::kUsageError);
  int sfd = make_signal_fd();
  if (sfd < 0) return cli::fail(prog, "cannot set up signal handling", cli::kRuntimeError);

  zmq::context_t ctx(1);
  net::DealerConnection conn(ctx, endpoint, server_key, secret_key);
  SystemClock clock;
  observer::Options opt;
  opt.clone_dir = clone_dir;
  opt.branches = branches;
  opt.state_file = state_file;
  opt.poll = Millis(poll_ms);
  observer::Observer obs(clock, conn, opt);
  if (!obs.load_state(&err)) return cli::fail(prog, err, cli::kRuntimeError);
  std::string list;
  for (const auto& b : branches) list += (list.empty() ? "" : ", ") + b;
  spdlog::info("watching {} ({}) every {} ms, dispatcher {}", clone_dir, list, poll_ms, endpoint);
  if (stale_locks > 0) spdlog::warn("removed {} stale git lock file(s) left by an earlier run", stale_locks);

  while (true) {
    zmq::pollitem_t items[] = {{conn.socket().handle(), 0, ZMQ_POLLIN, 0},
                               {nullptr, sfd, ZMQ_POLLIN, 0}};
    try {
      zmq::poll(items, 2, obs.next_wakeup());
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) spdlog::warn("poll: {}", e.what());
    }
    if (items[1].revents & ZMQ_POLLIN) {
      spdlog::info("signal {} received, stopping", read_signal(sfd));
      break;
    }
    for (int n = 0; n < 1024; ++n) {
      auto m = net::recv(conn.socket(), true, 2);
      if (!m) break;
      if (m->frames.size() != 2) continue;
      obs.on_frames(std::string(net::view(m->frames[0])), std::string(net::view(m->frames[1])));
    }
    obs.tick();
  }
  return 0;
}
}  // namespace

int main(int argc, char** argv) { return simpleci::cli::guarded_main("simpleci-observer", run_main, argc, argv); }
