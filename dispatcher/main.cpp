// simpleci-dispatcher: flags, logging and signals; the work happens in server.cpp.
#include <spdlog/spdlog.h>

#include "app/component.h"
#include "dispatcher/server.h"
#include "messages/limits.h"
#include "net/endpoint.h"

using namespace simpleci;

namespace {

// The flags as given, before they become dispatcher::ServerOptions.
struct Flags {
  std::string bind{kDefaultDispatcher}, state_dir = "simpleci-state", results_dir = "test_results";
  std::string curve_secret, authorized;
  dispatcher::Config cfg;
  int64_t timeout = cfg.job_timeout_s, attempts = cfg.max_attempts, heartbeat = cfg.heartbeat_ms;
  int64_t output_cap = static_cast<int64_t>(cfg.output_cap);
  int64_t max_queued = static_cast<int64_t>(cfg.max_queued), prune_after_days = cfg.prune_after_days;
  bool insecure = false;
  std::vector<std::string> repos, repo_limits;
  std::string endpoint;  // bind, checked
};

void add_flags(app::Component& c, Flags& f) {
  CLI::App& app = c.flags();
  app.add_option("--bind", f.bind, "endpoint to bind (port 0 or *: the OS picks)");
  app.add_option("--state-dir", f.state_dir, "folder for the SQLite store and the endpoint file");
  app.add_option("--results-dir", f.results_dir, "folder for <commit> and <commit>.json");
  app.add_option("--test-command", f.cfg.test_command, "command for commits without .simpleci/test");
  c.add_ranged("--job-timeout", f.timeout, "seconds before a job is killed", 1, msg::kMaxTimeoutS);
  c.add_ranged("--max-attempts", f.attempts, "runs of a job before it ends as error", 1, msg::kMaxMaxAttempts);
  c.add_ranged("--heartbeat-ms", f.heartbeat, "heartbeat interval", msg::kMinHeartbeatMs, msg::kMaxHeartbeatMs);
  c.add_ranged("--output-cap", f.output_cap, "bytes of output kept per job", msg::kMinOutputCap, msg::kMaxOutputCap);
  app.add_option("--curve-secret-key", f.curve_secret, "CURVE secret key file of the dispatcher");
  app.add_option("--authorized-keys", f.authorized, "folder of NAME.pub keys allowed to connect");
  c.add_ranged("--max-queued", f.max_queued, "queued jobs before new commits get queue_full", 1, msg::kMaxMaxQueued);
  c.add_ranged("--prune-after-days", f.prune_after_days,
               "hourly, drop the output and files of jobs finished longer ago (0 = never)", 0, msg::kMaxPruneDays);
  app.add_flag("--fsync-results", f.cfg.fsync_results, "fsync every result file (slower; the store is durable anyway)");
  app.add_flag("--insecure", f.insecure, "allow a non-loopback bind without CURVE");
  app.add_option("--repo", f.repos, "NAME=URL: a named repository to test (repeatable)");
  app.add_option("--repo-limit", f.repo_limits, "NAME=N: at most N jobs of repository NAME at once (repeatable)");
}

// The checks that need more than one flag or a parser of their own; all usage errors.
app::Stop check(const app::Component& c, Flags& f) {
  if (auto stop = cli::check_test_command(c.program(), f.cfg.test_command)) return stop;
  if (f.curve_secret.empty() != f.authorized.empty()) {
    return c.fail("--curve-secret-key and --authorized-keys go together", cli::kUsageError);
  }
  std::string err;
  if (!dispatcher::parse_repo_flags(f.repos, f.repo_limits, &f.cfg.repos, &err)) return c.fail(err, cli::kUsageError);
  f.endpoint = parse_bind_endpoint(f.bind, &err);
  if (f.endpoint.empty()) return c.fail("--bind: " + err, cli::kUsageError);
  if (!is_loopback_endpoint(f.endpoint) && f.curve_secret.empty() && !f.insecure) {
    return c.fail("refusing to bind " + f.bind +
                      " without CURVE (anyone who reaches it could submit work); use "
                      "--curve-secret-key/--authorized-keys, or --insecure",
                  cli::kUsageError);
  }
  return std::nullopt;
}

dispatcher::ServerOptions options(const Flags& f) {
  dispatcher::ServerOptions opt;
  opt.bind = f.endpoint;
  opt.state_dir = f.state_dir;
  opt.curve_secret_key_file = f.curve_secret;
  opt.authorized_keys_dir = f.authorized;
  opt.config = f.cfg;
  opt.config.heartbeat_ms = static_cast<uint32_t>(f.heartbeat);
  opt.config.max_attempts = static_cast<uint32_t>(f.attempts);
  opt.config.job_timeout_s = static_cast<uint32_t>(f.timeout);
  opt.config.output_cap = static_cast<uint64_t>(f.output_cap);
  opt.config.results_dir = f.results_dir;
  opt.config.max_queued = static_cast<uint64_t>(f.max_queued);
  opt.config.prune_after_days = static_cast<uint32_t>(f.prune_after_days);
  return opt;
}

int run_main(int argc, char** argv) {
  app::Component c("simpleci-dispatcher",
                   "simpleCI dispatcher: queues commits as jobs and hands them to runners", "dispatcher.log");
  Flags f;
  add_flags(c, f);
  if (auto stop = c.parse(argc, argv, [&] { return check(c, f); })) return *stop;
  if (auto stop = c.start("dispatcher")) return *stop;
  if (!is_loopback_endpoint(f.endpoint) && f.curve_secret.empty()) {
    spdlog::warn("--insecure: {} is reachable from the network without encryption or "
                 "authentication", f.bind);
  }
  return dispatcher::run_server(options(f), c.signal_fd());
}

}  // namespace

int main(int argc, char** argv) { return cli::guarded_main("simpleci-dispatcher", run_main, argc, argv); }
