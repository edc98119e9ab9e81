// simpleci-dispatcher: flags, logging and signals; the work happens in server.cpp.
#include <spdlog/spdlog.h>

#include "dispatcher/server.h"
#include "app/cli.h"
#include "net/endpoint.h"
#include "common/logging.h"
#include "common/signals.h"
#include "messages/validate.h"

using namespace simpleci;

namespace {
int run_main(int argc, char** argv) {
  const std::string prog = "simpleci-dispatcher";
  CLI::App app{"simpleCI dispatcher: queues commits as jobs and hands them to runners"};
  std::string bind = std::string(kDefaultDispatcher);
  std::string state_dir = "simpleci-state", results_dir = "test_results";
  std::string log_dir = kDefaultLogDir, log_level = "info";
  std::string curve_secret, authorized;
  dispatcher::Config cfg;
  int64_t timeout = cfg.job_timeout_s, attempts = cfg.max_attempts, heartbeat = cfg.heartbeat_ms;
  int64_t output_cap = cfg.output_cap;
  int64_t max_queued = cfg.max_queued, prune_after_days = cfg.prune_after_days;
  bool insecure = false, fsync_results = false;
  app.add_option("--bind", bind, "endpoint to bind (port 0 or *: the OS picks)");
  app.add_option("--state-dir", state_dir, "folder for the SQLite store and the endpoint file");
  app.add_option("--results-dir", results_dir, "folder for <commit> and <commit>.json");
  app.add_option("--test-command", cfg.test_command, "command for commits without .simpleci/test");
  app.add_option("--job-timeout", timeout, "seconds before a job is killed (1..604800)");
  app.add_option("--max-attempts", attempts, "runs of a job before it ends as error (1..100)");
  app.add_option("--heartbeat-ms", heartbeat, "heartbeat interval (10..600000)");
  app.add_option("--output-cap", output_cap, "bytes of output kept per job (1024..16777216)");
  app.add_option("--curve-secret-key", curve_secret, "CURVE secret key file of the dispatcher");
  app.add_option("--authorized-keys", authorized, "folder of NAME.pub keys allowed to connect");
  app.add_option("--max-queued", max_queued, "queued jobs before new commits get queue_full (1..10000000)");
  app.add_option("--prune-after-days", prune_after_days,
                 "hourly, drop the output and files of jobs finished longer ago (0 = never; 0..36500)");
  app.add_flag("--fsync-results", fsync_results, "fsync every result file (slower; the store is durable anyway)");
  app.add_flag("--insecure", insecure, "allow a non-loopback bind without CURVE");
  app.add_option("--log-dir", log_dir, "folder for dispatcher.log");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error|off");
  int code = 0;
  if (!cli::parse(app, argc, argv, prog, &code)) return code;

  if (!cli::in_range(prog, "--job-timeout", timeout, 1, msg::kMaxTimeoutS) ||
      !cli::in_range(prog, "--max-attempts", attempts, 1, msg::kMaxMaxAttempts) ||
      !cli::in_range(prog, "--heartbeat-ms", heartbeat, msg::kMinHeartbeatMs, msg::kMaxHeartbeatMs) ||
      !cli::in_range(prog, "--output-cap", output_cap, msg::kMinOutputCap, msg::kMaxOutputCap) ||
      !cli::in_range(prog, "--max-queued", max_queued, 1, msg::kMaxMaxQueued) ||
      !cli::in_range(prog, "--prune-after-days", prune_after_days, 0, msg::kMaxPruneDays)) {
    return cli::kUsageError;
  }
  if (!is_valid_text(cfg.test_command, msg::kMaxCommandLen) || cfg.test_command.empty()) {
    return cli::fail(prog, "--test-command must be 1..4096 bytes without NUL", cli::kUsageError);
  }
  if (curve_secret.empty() != authorized.empty()) {
    return cli::fail(prog, "--curve-secret-key and --authorized-keys go together", cli::kUsageError);
  }
  std::string err;
  std::string endpoint = parse_bind_endpoint(bind, &err);
  if (endpoint.empty()) return cli::fail(prog, "--bind: " + err, cli::kUsageError);
  bool loopback = is_loopback_endpoint(endpoint);
  if (!loopback && curve_secret.empty() && !insecure) {
    return cli::fail(prog, "refusing to bind " + bind +
                               " without CURVE (anyone who reaches it could submit work); use "
                               "--curve-secret-key/--authorized-keys, or --insecure",
                     cli::kUsageError);
  }
  if (!setup_logging("dispatcher", log_dir, log_level, &err)) {
    return cli::fail(prog, err, cli::kUsageError);
  }
  if (!loopback && curve_secret.empty()) {
    spdlog::warn("--insecure: {} is reachable from the network without encryption or "
                 "authentication", bind);
  }
  int sfd = make_signal_fd();
  if (sfd < 0) return cli::fail(prog, "cannot set up signal handling", cli::kRuntimeError);

  dispatcher::ServerOptions opt;
  opt.bind = endpoint;
  opt.state_dir = state_dir;
  opt.curve_secret_key_file = curve_secret;
  opt.authorized_keys_dir = authorized;
  cfg.heartbeat_ms = static_cast<uint32_t>(heartbeat);
  cfg.max_attempts = static_cast<uint32_t>(attempts);
  cfg.job_timeout_s = static_cast<uint32_t>(timeout);
  cfg.output_cap = static_cast<uint64_t>(output_cap);
  cfg.results_dir = results_dir;
  cfg.max_queued = static_cast<uint64_t>(max_queued);
  cfg.prune_after_days = static_cast<uint32_t>(prune_after_days);
  cfg.fsync_results = fsync_results;
  opt.config = cfg;
  return dispatcher::run_server(opt, sfd);
}
}  // namespace

int main(int argc, char** argv) { return simpleci::cli::guarded_main("simpleci-dispatcher", run_main, argc, argv); }
