// simpleci: the command-line client. Talks to the dispatcher (status, results, submit, watch,
// cancel, retry, prune), reads component logs, and makes CurveZMQ key pairs.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include <zmq.hpp>

#include "app/cli.h"
#include "common/clock.h"
#include "net/curve.h"
#include "net/dealer.h"
#include "net/endpoint.h"
#include "common/logging.h"
#include "net/transport.h"
#include "messages/validate.h"
#include "tools/client/format.h"

using namespace simpleci;
namespace fs = std::filesystem;

namespace {

const std::string kProg = "simpleci";
// `watch` of a job that ended other than passed (failed, timeout, cancelled, error).
constexpr int kJobNotPassed = 3;

struct Common {
  cli::ConnectFlags conn;
  int64_t timeout_ms = 5000;
  bool json = false;
};

// The request id a reply echoes (0 for messages without one).
uint64_t request_id_of(const msg::Message& m) {
  return std::visit(
      [](const auto& v) -> uint64_t {
        if constexpr (requires { v.request_id; }) {
          return v.request_id;
        } else {
          return 0;
        }
      },
      m);
}

// One connection to the dispatcher, used for one request or (watch) a series of them.
class Session {
 public:
  explicit Session(const Common& c) : c_(c) {}

  // 0 when ready; otherwise the exit code, the problem already printed.
  int open() {
    std::string server_key, secret_key;
    int code = 0;
    if (!c_.conn.resolve(kProg, &endpoint_, &server_key, &secret_key, &code)) return code;
    if (!cli::in_range(kProg, "--timeout-ms", c_.timeout_ms, 1, 3600000)) return cli::kUsageError;
    conn_.emplace(ctx_, endpoint_, server_key, secret_key);
    return 0;
  }

  // Sends req and waits (up to --timeout-ms) for the reply echoing request_id; replies to
  // earlier requests that arrive late are skipped. 0, or the exit code after printing why.
  // ERROR busy (the dispatcher still holds unread replies for this socket, e.g. the previous
  // output it sent is not written out yet) is retried after a pause, within the same deadline.
  int ask(const msg::Message& req, uint64_t request_id, msg::Message* reply) {
    conn_->send(req);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(c_.timeout_ms);
    auto pause = std::chrono::milliseconds(20);
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      zmq::pollitem_t item{conn_->socket().handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, left);
      auto r = net::recv(conn_->socket(), true, 2);
      if (!r) continue;
      msg::Decoded d = net::decode_frames(*r, 0);
      if (!d.ok()) continue;
      const uint64_t echoed = request_id_of(d.message);
      if (const auto* e = std::get_if<msg::Error>(&d.message);
          e && e->code == msg::ErrorCode::kBusy && echoed == request_id &&
          std::chrono::steady_clock::now() + pause < deadline) {
        std::this_thread::sleep_for(pause);
        pause = std::min(pause * 2, std::chrono::milliseconds(500));
        conn_->send(req);
        continue;
      }
      if (const auto* e = std::get_if<msg::Error>(&d.message); e && (echoed == request_id || echoed == 0)) {
        if (e->code == msg::ErrorCode::kQueueFull) {
          return cli::fail(kProg, "the dispatcher's queue is full (" + e->text + "); try again later",
                           cli::kRuntimeError);
        }
        return cli::fail(kProg, "dispatcher: " + e->text, cli::kRuntimeError);
      }
      if (echoed != request_id) continue;
      *reply = std::move(d.message);
      return 0;
    }
    return cli::fail(kProg, "no answer from " + endpoint_ + " within " + std::to_string(c_.timeout_ms) + " ms",
                     cli::kRuntimeError);
  }

 private:
  const Common& c_;
  zmq::context_t ctx_{1};
  std::optional<net::DealerConnection> conn_;
  std::string endpoint_;
};

int request(const Common& c, const msg::Message& req, uint64_t request_id, msg::Message* reply) {
  Session s(c);
  if (int rc = s.open()) return rc;
  return s.ask(req, request_id, reply);
}

int do_status(const Common& c) {
  msg::Message rep;
  if (int rc = request(c, msg::StatusRequest{1}, 1, &rep)) return rc;
  const auto* s = std::get_if<msg::StatusReply>(&rep);
  if (!s) return cli::fail(kProg, "unexpected reply from the dispatcher", cli::kRuntimeError);
  SystemClock clock;
  std::fputs((c.json ? client::status_json(*s) : client::status_text(*s, clock.wall_ms())).c_str(), stdout);
  return 0;
}

int do_results(const Common& c, const std::string& commit_arg, int64_t limit) {
  std::string commit;
  if (!commit_arg.empty()) {
    commit = normalize_commit_id(commit_arg);
    if (commit.empty()) return cli::fail(kProg, "not a commit id (40 or 64 hex characters): '" + commit_arg + "'", cli::kUsageError);
  }
  if (!cli::in_range(kProg, "--limit", limit, 1, 1000)) return cli::kUsageError;
  msg::Message rep;
  msg::ResultsRequest req{1, commit, static_cast<uint32_t>(limit), !commit.empty()};
  if (int rc = request(c, req, 1, &rep)) return rc;
  const auto* r = std::get_if<msg::ResultsReply>(&rep);
  if (!r) return cli::fail(kProg, "unexpected reply from the dispatcher", cli::kRuntimeError);
  if (!commit.empty() && r->jobs.empty()) return cli::fail(kProg, "no jobs for " + commit, cli::kRuntimeError);
  std::fputs((c.json ? client::results_json(*r) : client::results_text(*r, !commit.empty())).c_str(), stdout);
  return 0;
}

int do_submit(const Common& c, const std::string& commit_arg, const std::string& branch, bool force) {
  std::string commit = normalize_commit_id(commit_arg);
  if (commit.empty()) return cli::fail(kProg, "not a commit id (40 or 64 hex characters): '" + commit_arg + "'", cli::kUsageError);
  if (!is_valid_branch(branch)) return cli::fail(kProg, "--branch: not a valid branch name: '" + branch + "'", cli::kUsageError);
  msg::Message rep;
  if (int rc = request(c, msg::Commit{1, commit, branch, force}, 1, &rep)) return rc;
  const auto* a = std::get_if<msg::Accepted>(&rep);
  if (!a) return cli::fail(kProg, "unexpected reply from the dispatcher", cli::kRuntimeError);
  std::printf(a->duplicate ? "already known as job %llu\n" : "queued job %llu\n",
              static_cast<unsigned long long>(a->job_id));
  return 0;
}

int do_job_request(const Common& c, bool cancel, int64_t job) {
  if (job < 1) return cli::fail(kProg, "JOB must be a job number (1 or more), got " + std::to_string(job), cli::kUsageError);
  msg::Message rep;
  msg::Message req = cancel ? msg::Message(msg::CancelRequest{1, static_cast<uint64_t>(job)})
                            : msg::Message(msg::RetryRequest{1, static_cast<uint64_t>(job)});
  if (int rc = request(c, req, 1, &rep)) return rc;
  const auto* ok = std::get_if<msg::Ok>(&rep);
  if (!ok) return cli::fail(kProg, "unexpected reply from the dispatcher", cli::kRuntimeError);
  std::printf("%s\n", ok->text.c_str());
  return 0;
}

// Prunes in rounds: one request drops at most kMaxPrunePerRequest jobs, so ask again while a
// round is full.
int do_prune(const Common& c, int64_t days) {
  if (!cli::in_range(kProg, "--older-than", days, 1, msg::kMaxPruneDays)) return cli::kUsageError;
  Session s(c);
  if (int rc = s.open()) return rc;
  uint64_t total = 0;
  for (uint64_t id = 1;; ++id) {
    msg::Message rep;
    if (int rc = s.ask(msg::PruneRequest{id, static_cast<uint32_t>(days)}, id, &rep)) return rc;
    const auto* ok = std::get_if<msg::Ok>(&rep);
    if (!ok) return cli::fail(kProg, "unexpected reply from the dispatcher", cli::kRuntimeError);
    total += ok->job_id;
    if (ok->job_id < msg::kMaxPrunePerRequest) break;
  }
  std::printf("pruned %llu job(s) finished more than %lld days ago\n", static_cast<unsigned long long>(total),
              static_cast<long long>(days));
  return 0;
}

// Prints a job's output as it is produced, until the job ends; the output goes to stdout and
// what happens to the job (started, restarted, bytes skipped, how it ended) to stderr.
int do_watch(const Common& c, const std::string& target, int64_t interval_ms) {
  if (!cli::in_range(kProg, "--interval-ms", interval_ms, 10, 60000)) return cli::kUsageError;
  uint64_t job = 0;
  const bool numeric = !target.empty() && target.size() <= 18 &&
                       target.find_first_not_of("0123456789") == std::string::npos;
  std::string commit = numeric ? "" : normalize_commit_id(target);
  if (numeric) job = std::stoull(target);
  if (job == 0 && commit.empty()) {
    return cli::fail(kProg, "watch needs a job number (1 or more) or a commit id (40 or 64 hex characters), got '" + target + "'",
                     cli::kUsageError);
  }
  Session s(c);
  if (int rc = s.open()) return rc;
  msg::Message rep;
  uint64_t id = 1;
  if (!commit.empty()) {
    if (int rc = s.ask(msg::ResultsRequest{id, commit, 1, false}, id, &rep)) return rc;
    const auto* r = std::get_if<msg::ResultsReply>(&rep);
    if (!r) return cli::fail(kProg, "unexpected reply from the dispatcher", cli::kRuntimeError);
    if (r->jobs.empty()) return cli::fail(kProg, "no jobs for " + commit, cli::kRuntimeError);
    job = r->jobs[0].job_id;
  }
  uint32_t attempt = 0;
  uint64_t offset = 0;
  std::optional<msg::JobStatus> shown;
  while (true) {
    ++id;
    if (int rc = s.ask(msg::WatchRequest{id, job, attempt, offset}, id, &rep)) return rc;
    const auto* w = std::get_if<msg::WatchReply>(&rep);
    if (!w) return cli::fail(kProg, "unexpected reply from the dispatcher", cli::kRuntimeError);
    if (w->attempt != attempt) {  // (re)started: its output begins again at 0
      if (attempt != 0) std::fprintf(stderr, "simpleci: job %llu restarted\n", static_cast<unsigned long long>(job));
      attempt = w->attempt;
      offset = 0;
    }
    if (w->status != shown && !msg::is_final(w->status)) {
      if (w->status == msg::JobStatus::kRunning) {
        std::fprintf(stderr, "simpleci: job %llu running on %s (attempt %u)\n", static_cast<unsigned long long>(job),
                     w->runner.c_str(), w->attempt);
      } else {
        std::fprintf(stderr, "simpleci: job %llu queued\n", static_cast<unsigned long long>(job));
      }
      shown = w->status;
    }
    std::string_view data = w->data;
    if (w->offset > offset) {
      std::fflush(stdout);
      std::fprintf(stderr, "simpleci: [%llu bytes of output not kept]\n",
                   static_cast<unsigned long long>(w->offset - offset));
    } else {
      data.remove_prefix(std::min<uint64_t>(offset - w->offset, data.size()));
    }
    std::fwrite(data.data(), 1, data.size(), stdout);
    std::fflush(stdout);
    offset = std::max(offset, w->offset + w->data.size());
    if (w->complete) {
      std::fprintf(stderr, "simpleci: job %llu %s (exit %d, %.1f s, runner %s, attempt %u)\n",
                   static_cast<unsigned long long>(job), std::string(msg::to_string(w->status)).c_str(), w->exit_code,
                   static_cast<double>(w->duration_ms) / 1000.0, w->runner.empty() ? "-" : w->runner.c_str(),
                   w->attempt);
      return w->status == msg::JobStatus::kPassed ? 0 : kJobNotPassed;
    }
    if (w->data.size() < msg::kMaxWatchBytes) std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
  }
}

// Prints a component's log; with follow, keeps printing what is appended (and follows the file
// through rotation, when a new file takes its name).
int do_logs(std::string component, const std::string& log_dir, bool follow) {
  if (component == "runner") {
    std::vector<std::string> found;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(log_dir, ec)) {
      std::string n = e.path().filename().string();
      if (n.rfind("runner-", 0) == 0 && e.path().extension() == ".log") found.push_back(n.substr(0, n.size() - 4));
    }
    if (found.size() != 1) {
      return cli::fail(kProg, std::to_string(found.size()) + " runner logs in " + log_dir + "; name one (runner-NAME)", cli::kUsageError);
    }
    component = found[0];
  }
  if (!is_safe_name(component)) return cli::fail(kProg, "not a component name: '" + component + "'", cli::kUsageError);
  fs::path path = fs::path(log_dir) / (component + ".log");
  std::ifstream in(path, std::ios::binary);
  if (!in) return cli::fail(kProg, "no log at " + path.string(), cli::kRuntimeError);
  struct stat st {};
  ::stat(path.c_str(), &st);
  ino_t inode = st.st_ino;
  std::streamoff pos = 0;
  char buf[65536];
  while (true) {
    in.clear();
    in.seekg(pos);
    while (in.read(buf, sizeof buf) || in.gcount() > 0) {
      std::fwrite(buf, 1, static_cast<size_t>(in.gcount()), stdout);
      pos += in.gcount();
    }
    std::fflush(stdout);
    if (!follow) return 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    struct stat now {};
    if (::stat(path.c_str(), &now) == 0 && (now.st_ino != inode || now.st_size < pos)) {
      in.close();  // rotated or truncated: start on the new file
      in.open(path, std::ios::binary);
      inode = now.st_ino;
      pos = 0;
    }
  }
}

}  // namespace

namespace {
// keygen, and with --authorize DIR --role ROLE the public key copied to DIR/<role folder>/.
int do_keygen(const std::string& key_dir, const std::string& name, const std::string& authorize_dir,
              const std::string& role) {
  if (authorize_dir.empty() != role.empty()) {
    return cli::fail(kProg, "--authorize and --role go together", cli::kUsageError);
  }
  std::optional<Role> r = role_from_folder(role + "s");
  if (!role.empty() && !r) {
    return cli::fail(kProg, "--role must be runner, observer, client or admin, got '" + role + "'",
                     cli::kUsageError);
  }
  std::string err;
  std::error_code ec;
  fs::create_directories(key_dir, ec);
  if (!curve::keygen(key_dir, name, &err)) return cli::fail(kProg, err, cli::kRuntimeError);
  const fs::path pub = fs::path(key_dir) / (name + ".pub");
  std::printf("wrote %s (secret, keep it private) and %s\n",
              (fs::path(key_dir) / (name + ".key")).c_str(), pub.c_str());
  if (!r) return 0;
  const fs::path to = fs::path(authorize_dir) / folder_of(*r) / (name + ".pub");
  fs::create_directories(to.parent_path(), ec);
  fs::copy_file(pub, to, ec);
  if (ec) return cli::fail(kProg, "cannot copy to '" + to.string() + "': " + ec.message(), cli::kRuntimeError);
  std::printf("authorised %s as a %s: %s (send the dispatcher SIGHUP to apply)\n", name.c_str(),
              role.c_str(), to.c_str());
  return 0;
}

int run_main(int argc, char** argv) {
  CLI::App app{"simpleCI client"};
  app.require_subcommand(1);
  app.fallthrough();
  Common c;
  c.conn.add(app, "this client");
  app.add_option("--timeout-ms", c.timeout_ms, "how long to wait for an answer (default 5000)");

  auto* status = app.add_subcommand("status", "runners, queue, running jobs, counters");
  status->add_flag("--json", c.json, "print JSON");
  auto* results = app.add_subcommand("results", "recent results, or one commit in full");
  std::string commit, branch;
  int64_t limit = 20, job = 0;
  bool force = false, follow = false;
  results->add_option("COMMIT", commit, "commit id");
  results->add_option("--limit", limit, "how many jobs (1..1000)");
  results->add_flag("--json", c.json, "print JSON");
  auto* submit = app.add_subcommand("submit", "queue a commit by hand");
  submit->add_option("COMMIT", commit, "commit id")->required();
  submit->add_option("--branch", branch, "its branch");
  submit->add_flag("--force", force, "test again even if it was tested");
  auto* cancel = app.add_subcommand("cancel", "cancel a queued or running job");
  cancel->add_option("JOB", job, "job number")->required();
  auto* retry = app.add_subcommand("retry", "queue a finished job's commit again");
  retry->add_option("JOB", job, "job number")->required();
  auto* watch = app.add_subcommand("watch", "print a job's output as it runs; exit 0 if it passes, 3 if not");
  std::string target;
  int64_t interval_ms = 200;
  watch->add_option("JOB_OR_COMMIT", target, "job number, or commit id (its newest job)")->required();
  watch->add_option("--interval-ms", interval_ms, "how often to ask for new output (default 200)");
  auto* prune = app.add_subcommand("prune", "drop the stored output and result files of old jobs (admin)");
  int64_t older_than = 0;
  prune->add_option("--older-than", older_than, "days since the job finished (1..36500)")->required();
  auto* logs = app.add_subcommand("logs", "print (or follow) a component's log");
  std::string component, log_dir = kDefaultLogDir, key_dir = ".", name, authorize_dir, role;
  logs->add_option("COMPONENT", component, "dispatcher, observer, runner-NAME or runner")->required();
  logs->add_flag("-f,--follow", follow, "keep printing new lines");
  logs->add_option("--log-dir", log_dir, "log folder");
  auto* keygen = app.add_subcommand("keygen", "make a CurveZMQ key pair NAME.key / NAME.pub");
  keygen->add_option("NAME", name, "key name")->required();
  keygen->add_option("--dir", key_dir, "folder for the key files (default .)");
  keygen->add_option("--authorize", authorize_dir, "also copy NAME.pub into this authorised-keys folder");
  keygen->add_option("--role", role, "with --authorize: runner|observer|client|admin");

  if (argc > 1 && argv[1][0] != '-') {
    bool known = false;
    for (const auto* sub : app.get_subcommands([](CLI::App*) { return true; })) known |= sub->get_name() == argv[1];
    if (!known) {
      return cli::fail(kProg, std::string("unknown command '") + argv[1] +
                                  "' (status, results, submit, watch, cancel, retry, prune, logs, keygen)",
                       cli::kUsageError);
    }
  }
  int code = 0;
  if (!cli::parse(app, argc, argv, kProg, &code)) return code;
  if (status->parsed()) return do_status(c);
  if (results->parsed()) return do_results(c, commit, limit);
  if (submit->parsed()) return do_submit(c, commit, branch, force);
  if (cancel->parsed()) return do_job_request(c, true, job);
  if (retry->parsed()) return do_job_request(c, false, job);
  if (watch->parsed()) return do_watch(c, target, interval_ms);
  if (prune->parsed()) return do_prune(c, older_than);
  if (logs->parsed()) return do_logs(component, log_dir, follow);
  if (keygen->parsed()) return do_keygen(key_dir, name, authorize_dir, role);
  return cli::fail(kProg, "no subcommand", cli::kUsageError);
}
}  // namespace

int main(int argc, char** argv) { return simpleci::cli::guarded_main("simpleci", run_main, argc, argv); }
