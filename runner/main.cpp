// simpleci-runner: flags, logging, signals and the poll loop; the logic is in runner.cpp.
#include <git2.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include "app/component.h"
#include "git/auth.h"
#include "git/git.h"
#include "messages/limits.h"
#include "messages/validate.h"
#include "runner/labels.h"
#include "runner/runner.h"
#include "runner/trust.h"

using namespace simpleci;

namespace {

struct Flags {
  std::string name, repo_url, clone_dir, cache_dir, labels_given;
  std::vector<std::string> repo_url_flags;
  bool no_auto_labels = false;
  std::vector<std::string> labels;               // from labels_given and the machine, checked
  std::map<std::string, std::string> repo_urls;  // from repo_url_flags, checked
  cli::ConnectFlags conn;
  std::string test_command{msg::kDefaultTestCommand};
  int64_t jobs = 1, grace_ms = msg::kDefaultKillGraceMs;
  bool insecure = false;
  cli::Dispatcher dispatcher;  // from conn, checked
  git::Auth auth;  // --ssh-key, --ssh-known-hosts, --git-credentials, --ca-file
};

void add_flags(app::Component& c, Flags& f) {
  CLI::App& app = c.flags();
  git::add_auth_flags(app, f.auth);
  f.conn.add(app, "this runner");
  app.add_option("--name", f.name, "runner name (default HOSTNAME-PID)");
  c.add_ranged("--jobs", f.jobs, "jobs run at once, each in its own checkout", 1, msg::kMaxCapacity);
  app.add_option("--repo", f.repo_url, "clone this URL into CLONE_DIR when it does not exist");
  c.add_ranged("--kill-grace-ms", f.grace_ms, "SIGTERM to SIGKILL delay for timeouts and cancels", 0,
               msg::kMaxKillGraceMs);
  app.add_option("--test-command", f.test_command,
                 "command for commits without .simpleci/test when the dispatcher is not authenticated");
  app.add_flag("--insecure", f.insecure, "allow plain text to a non-loopback dispatcher");
  app.add_option("--cache", f.cache_dir,
                 "serve every repository the dispatcher declares, each cloned into DIR/NAME on first use");
  app.add_option("--repo-url", f.repo_url_flags,
                 "NAME=URL: fetch repository NAME from URL (repeatable); without it a named repository's URL "
                 "is taken from the dispatcher only when it is authenticated")
      ->allow_extra_args(false);  // one NAME=URL per flag: a CLONE_DIR after it stays CLONE_DIR
  app.add_option("--labels", f.labels_given, "comma-separated labels this runner adds to its automatic ones");
  app.add_flag("--no-auto-labels", f.no_auto_labels, "advertise no automatic labels (OS, machine, host-NAME)");
  app.add_option("CLONE_DIR", f.clone_dir, "the runner's clone of the unnamed repository (the original flow)");
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

// What uname and gethostname say, for the automatic labels.
runner::MachineFacts this_machine() {
  runner::MachineFacts m;
  struct utsname u {};
  if (::uname(&u) == 0) {
    m.os = u.sysname;
    m.machine = u.machine;
  }
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) == 0) m.hostname = host;
  return m;
}

// --repo-url NAME=URL, each NAME once.
std::string parse_repo_urls(const std::vector<std::string>& given, std::map<std::string, std::string>* out) {
  for (const std::string& flag : given) {
    const size_t eq = flag.find('=');
    const std::string name = flag.substr(0, eq);
    if (eq == std::string::npos || !is_safe_name(name)) {
      return "--repo-url must be NAME=URL with NAME 1-" + std::to_string(msg::kMaxNameLen) +
             " of A-Z a-z 0-9 . _ - (not starting with . or -), got '" + flag + "'";
    }
    const std::string url = flag.substr(eq + 1);
    if (url.empty() || !is_valid_text(url, msg::kMaxTextLen)) {
      return "--repo-url " + name + "= needs a URL (at most " + std::to_string(msg::kMaxTextLen) + " bytes)";
    }
    if (!out->emplace(name, url).second) return "--repo-url names repository " + name + " twice";
  }
  return "";
}

// Where the repositories are served from: CLONE_DIR, --cache or both.
std::string check_folders(const Flags& f) {
  if (f.clone_dir.empty() && f.cache_dir.empty()) {
    return "give CLONE_DIR (the unnamed repository), --cache DIR (every declared repository) or both";
  }
  if (f.clone_dir.empty() && !f.repo_url.empty()) return "--repo URL clones into CLONE_DIR; give CLONE_DIR too";
  if (!f.repo_urls.empty() && f.cache_dir.empty()) {
    return "--repo-url maps named repositories, which only a runner with --cache DIR serves";
  }
  return "";
}

// The checks beyond ranges; all usage errors.
app::Stop check(const app::Component& c, Flags& f) {
  if (std::string err; !git::set_auth(f.auth, &err)) return c.fail(err, cli::kUsageError);
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
  std::string err;
  if (!runner::runner_labels(f.labels_given, this_machine(), !f.no_auto_labels, &f.labels, &err)) {
    return c.fail(err, cli::kUsageError);
  }
  err = parse_repo_urls(f.repo_url_flags, &f.repo_urls);
  if (err.empty()) err = check_folders(f);
  if (!err.empty()) return c.fail(err, cli::kUsageError);
  return std::nullopt;
}

// What the runner says about itself once it runs.
void log_start(const Flags& f, const runner::DispatcherTrust& trust, int stale_locks) {
  const std::string& endpoint = f.dispatcher.endpoint;
  std::string serves = f.clone_dir.empty() ? "" : "the unnamed repository in " + f.clone_dir;
  if (!f.cache_dir.empty()) serves += (serves.empty() ? "" : " and ") + ("every declared repository in " + f.cache_dir);
  spdlog::info("runner {} for {} connecting to {} ({} slot(s))", f.name, serves, endpoint, f.jobs);
  std::string labels;
  for (const auto& label : f.labels) labels += (labels.empty() ? "" : ",") + label;
  spdlog::info("labels: {}", labels.empty() ? "(none)" : labels);
  for (const auto& [name, url] : f.repo_urls) spdlog::info("repository {} is fetched from {} (--repo-url)", name, url);
  if (runner::plain_text_to_another_machine(endpoint, f.dispatcher.curve())) {
    spdlog::warn("--insecure: talking plain text to {}; anyone on the path can read the results "
                 "and pose as the dispatcher", endpoint);
  }
  if (trust.authenticated) {
    spdlog::info("the dispatcher is authenticated ({}): running the test command it sends", trust.why);
  } else {
    spdlog::info("the dispatcher is not authenticated ({}): commits without .simpleci/test run "
                 "this runner's --test-command '{}'", trust.why, f.test_command);
    if (!f.cache_dir.empty()) {
      spdlog::info("only repositories named by --repo-url are served: the dispatcher's URLs are not trusted");
    }
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
  runner::RepoWorkspaces ws(f.clone_dir, f.cache_dir);
  // Held results live with the positional clone as they always have; a runner with only
  // --cache keeps them in DIR/.simpleci (no repository name starts with '.').
  const std::filesystem::path work_dir = f.clone_dir.empty()
                                             ? std::filesystem::path(f.cache_dir) / ".simpleci"
                                             : std::filesystem::path(f.clone_dir) / ".git" / "simpleci";
  runner::Options opt{f.name, static_cast<uint32_t>(f.jobs), work_dir};
  opt.test_command = f.test_command;
  opt.labels = f.labels;
  opt.serves_unnamed = !f.clone_dir.empty();
  opt.serves_all = !f.cache_dir.empty();
  opt.repo_urls = f.repo_urls;
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

// Makes the --cache folder when it is missing, and clears the lock files a killed run left in
// the clones already there.
bool prepare_cache(const std::string& dir, int* stale_locks, std::string* err) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!fs::is_directory(dir, ec)) {
    *err = "--cache: cannot make or use the folder " + dir + (ec ? ": " + ec.message() : "");
    return false;
  }
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (is_safe_name(name) && fs::is_directory(e.path() / ".git", ec)) *stale_locks += git::remove_stale_locks(e.path());
  }
  if (ec) {
    *err = "--cache: cannot read the folder " + dir + ": " + ec.message();
    return false;
  }
  return true;
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
  int stale_locks = 0;
  if (!f.clone_dir.empty()) {
    if (!runner::open_or_clone(f.clone_dir, f.repo_url, &err)) return c.fail(err, cli::kRuntimeError);
    f.clone_dir = std::filesystem::absolute(f.clone_dir).lexically_normal().string();
    // Slot clones live under CLONE_DIR/.git, so this covers them too.
    stale_locks += git::remove_stale_locks(f.clone_dir);
  }
  if (!f.cache_dir.empty()) {
    if (!prepare_cache(f.cache_dir, &stale_locks, &err)) return c.fail(err, cli::kRuntimeError);
    f.cache_dir = std::filesystem::absolute(f.cache_dir).lexically_normal().string();
  }
  if (auto stop = c.start("runner-" + f.name)) return *stop;
  return run(c, f, supervisor, stale_locks);
}

}  // namespace

int main(int argc, char** argv) { return cli::guarded_main("simpleci-runner", run_main, argc, argv); }
