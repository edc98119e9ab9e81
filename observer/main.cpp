// simpleci-observer: flags, logging, signals and the poll loop; the logic is in observer.cpp.
#include <git2.h>

#include <filesystem>
#include <map>

#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include "app/component.h"
#include "git/auth.h"
#include "common/fsutil.h"
#include "git/git.h"
#include "messages/limits.h"
#include "messages/validate.h"
#include "observer/git_watch.h"
#include "observer/observer.h"

using namespace simpleci;
namespace fs = std::filesystem;

namespace {

struct Flags {
  std::string clone_dir, cache_dir, state_file;
  std::vector<std::string> repo_url_args;        // NAME=URL
  std::map<std::string, std::string> repo_urls;  // from them, checked
  cli::ConnectFlags conn;
  std::vector<std::string> branches;
  int64_t poll_ms = msg::kDefaultPollMs;
  cli::Dispatcher dispatcher;  // from conn, checked
  git::Auth auth;  // --ssh-key, --ssh-known-hosts, --git-credentials, --ca-file
};

void add_flags(app::Component& c, Flags& f) {
  CLI::App& app = c.flags();
  git::add_auth_flags(app, f.auth);
  f.conn.add(app, "this observer");
  c.add_ranged("--poll-ms", f.poll_ms, "how often to poll origin (fetching only what moved)", msg::kMinPollMs,
               msg::kMaxPollMs);
  app.add_option("--branch", f.branches,
                 "branch to watch, or an fnmatch pattern such as 'release/*' (repeatable; default: the clone's "
                 "branch, with --cache each repository's default branch)");
  app.add_option("--state-file", f.state_file, "cursor file (default CLONE_DIR/.git/simpleci/observer-state)");
  app.add_option("--cache", f.cache_dir,
                 "instead of CLONE_DIR: watch every repository the dispatcher declares, each cloned into DIR/NAME");
  app.add_option("--repo-url", f.repo_url_args,
                 "with --cache: fetch repository NAME from URL (repeatable; wins over the dispatcher's URL, which is "
                 "used only over CURVE)")
      ->type_name("NAME=URL")
      ->allow_extra_args(false);  // one value per flag: the next word may be CLONE_DIR
  app.add_option("CLONE_DIR", f.clone_dir, "the observer's clone of the repository (or --cache DIR)");
}

// --repo-url NAME=URL values into f.repo_urls; a usage problem's text otherwise.
std::string parse_repo_urls(Flags& f) {
  for (const auto& arg : f.repo_url_args) {
    const size_t eq = arg.find('=');
    const std::string name = arg.substr(0, eq), url = eq == std::string::npos ? "" : arg.substr(eq + 1);
    if (eq == std::string::npos || !is_safe_name(name) || url.empty() || !is_valid_text(url, msg::kMaxTextLen)) {
      return "--repo-url: not NAME=URL with a repository name and a URL: '" + arg + "'";
    }
    if (!f.repo_urls.emplace(name, url).second) return "--repo-url: repository " + name + " is given twice";
  }
  return "";
}

app::Stop check(const app::Component& c, Flags& f) {
  if (std::string err; !git::set_auth(f.auth, &err)) return c.fail(err, cli::kUsageError);
  if (auto stop = f.conn.resolve(c.program(), &f.dispatcher)) return stop;
  for (const auto& b : f.branches) {
    if (!observer::is_valid_branch_pattern(b)) {
      return c.fail("--branch: not a valid branch name or pattern: '" + b + "'", cli::kUsageError);
    }
  }
  if (f.clone_dir.empty() == f.cache_dir.empty()) {
    return c.fail("give either CLONE_DIR (one repository) or --cache DIR (every declared one), not both",
                  cli::kUsageError);
  }
  if (!f.cache_dir.empty() && !f.state_file.empty()) {
    return c.fail("--state-file is for CLONE_DIR; with --cache each repository keeps its own", cli::kUsageError);
  }
  if (f.cache_dir.empty() && !f.repo_url_args.empty()) return c.fail("--repo-url needs --cache", cli::kUsageError);
  if (std::string problem = parse_repo_urls(f); !problem.empty()) return c.fail(problem, cli::kUsageError);
  return std::nullopt;
}

// The clone, its branches and the cursor's folder: what the observer needs before it starts.
// Git lock files an earlier run left are removed (*stale_locks: how many).
app::Stop prepare(const app::Component& c, Flags& f, int* stale_locks) {
  std::string err;
  std::error_code ec;
  if (!f.cache_dir.empty()) {
    if (!ensure_writable_dir(f.cache_dir, &err)) return c.fail(err, cli::kRuntimeError);
    return std::nullopt;
  }
  if (!fs::exists(f.clone_dir, ec)) return c.fail("clone folder does not exist: " + f.clone_dir, cli::kRuntimeError);
  if (!observer::check_clone(f.clone_dir, &err)) return c.fail(err, cli::kRuntimeError);
  *stale_locks = git::remove_stale_locks(f.clone_dir);
  if (f.branches.empty()) {
    std::string b = observer::current_branch(f.clone_dir, &err);
    if (b.empty()) return c.fail(err, cli::kRuntimeError);
    f.branches.push_back(b);
  }
  if (f.state_file.empty()) f.state_file = (fs::path(f.clone_dir) / ".git" / "simpleci" / "observer-state").string();
  const fs::path folder = fs::path(f.state_file).parent_path();
  if (!ensure_writable_dir(folder.empty() ? "." : folder, &err)) return c.fail(err, cli::kRuntimeError);
  return std::nullopt;
}

int run(app::Component& c, const Flags& f, int stale_locks) {
  zmq::context_t ctx(1);
  net::DealerConnection conn(ctx, f.dispatcher.endpoint, f.dispatcher.server_key, f.dispatcher.secret_key);
  SystemClock clock;
  observer::Options opt;
  opt.clone_dir = f.clone_dir;
  opt.cache_dir = f.cache_dir;
  opt.repo_urls = f.repo_urls;
  opt.authenticated = f.dispatcher.curve();
  opt.branches = f.branches;
  opt.state_file = f.state_file;
  opt.poll = Millis(f.poll_ms);
  observer::Observer obs(clock, conn, opt);
  std::string err;
  if (!obs.load_state(&err)) return c.fail(err, cli::kRuntimeError);
  std::string list;
  for (const auto& b : f.branches) list += (list.empty() ? "" : ", ") + b;
  if (f.cache_dir.empty()) {
    spdlog::info("watching {} ({}) every {} ms, dispatcher {}", f.clone_dir, list, f.poll_ms, f.dispatcher.endpoint);
  } else {
    spdlog::info("watching every repository the dispatcher declares, in {} ({}) every {} ms, dispatcher {}",
                 f.cache_dir, list.empty() ? "each one's default branch" : list, f.poll_ms, f.dispatcher.endpoint);
  }
  if (stale_locks > 0) spdlog::warn("removed {} stale git lock file(s) left by an earlier run", stale_locks);
  app::PeerLoop loop = app::loop_of(obs, [](int sig) {
    spdlog::info("signal {} received, stopping", sig);
    return false;
  });
  loop.max_messages = 1024;
  loop.done = [&obs] { return !obs.version_error().empty(); };
  app::run_peer_loop(conn, c.signal_fd(), loop);
  if (!obs.version_error().empty()) {
    spdlog::error("{}", obs.version_error());
    return c.fail(obs.version_error(), cli::kRuntimeError);
  }
  return 0;
}

int run_main(int argc, char** argv) {
  app::Component c("simpleci-observer",
                   "simpleCI observer: sends every new commit of its clone's origin (or of every declared repository) to the dispatcher", "observer.log");
  Flags f;
  add_flags(c, f);
  if (auto stop = c.parse(argc, argv, [&] { return check(c, f); })) return *stop;
  git_libgit2_init();
  int stale_locks = 0;
  if (auto stop = prepare(c, f, &stale_locks)) return *stop;
  if (auto stop = c.start("observer")) return *stop;
  return run(c, f, stale_locks);
}

}  // namespace

int main(int argc, char** argv) { return cli::guarded_main("simpleci-observer", run_main, argc, argv); }
