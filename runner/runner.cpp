#include "runner/runner.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>

#include <spdlog/spdlog.h>

#include "common/fsutil.h"

namespace simpleci::runner {

namespace fs = std::filesystem;
using msg::JobStatus;

namespace {
constexpr Millis kRegisterRepeat(1000);
constexpr Millis kMaxBackoff(32000);
constexpr Millis kStreamEvery(20);
// Live output queued for the dispatcher and not yet written to the connection, at most: past it
// the backlog holds (and skips what it cannot hold), as it does while the link refuses.
constexpr size_t kMaxLiveInFlight = size_t{4} << 20;

// The program of the named job `name` in the checkout at workdir: .simpleci/jobs/NAME, which
// must be a regular executable file that is really there (no symbolic link, in it or on the
// way to it, leads elsewhere). "" with *why otherwise: the commit's problem, told in its output.
std::string job_program(const std::string& workdir, const std::string& name, std::string* why) {
  const std::string rel = ".simpleci/jobs/" + name;
  std::error_code ec;
  const fs::path root = fs::canonical(workdir, ec);
  const fs::path path = root / ".simpleci" / "jobs" / name;
  const fs::file_status st = fs::symlink_status(path, ec);
  if (ec || !fs::exists(st)) {
    *why = "job " + name + ": " + rel + " is not in this commit";
    return "";
  }
  if (!fs::is_regular_file(st) || fs::canonical(path, ec) != path) {
    *why = "job " + name + ": " + rel + " is not a regular file in the checkout (a job must be one, not a "
           "symbolic link or a folder)";
    return "";
  }
  if (::access(path.c_str(), X_OK) != 0) {
    *why = "job " + name + ": " + rel + " is not executable (chmod +x it and commit)";
    return "";
  }
  return path.string();
}
}  // namespace

Runner::Runner(Clock& clock, Link& link, Executor& exec, Workspace& ws, Options opt)
    : clock_(clock), link_(link), exec_(exec), ws_(ws), opt_(std::move(opt)), slots_(opt_.capacity),
      held_(opt_.work_dir / "results") {
  event_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

Runner::~Runner() {
  for (auto& s : slots_) {
    if (s.worker.joinable()) s.worker.join();
  }
  if (event_fd_ >= 0) ::close(event_fd_);
}

bool Runner::start(std::string* err) {
  std::vector<msg::Result> held;
  if (!held_.load(&held, err)) return false;
  for (auto& r : held) pending_[{r.job_id, r.attempt}] = Pending{std::move(r), SteadyTime{}};
  if (!pending_.empty()) spdlog::info("{} unacknowledged result(s) to deliver", pending_.size());
  last_heard_ = clock_.now();
  send_register();
  return true;
}

void Runner::send(const msg::Message& m) {
  if (!link_.send(m)) spdlog::debug("could not queue {} for the dispatcher", msg::to_string(msg::type_of(m)));
}

void Runner::send_register() {
  std::set<uint64_t> held;
  for (const auto& s : slots_) {
    if (s.job) held.insert(s.job->job_id);
  }
  for (const auto& j : waiting_) held.insert(j.job_id);
  for (const auto& [key, p] : pending_) held.insert(key.first);
  msg::Register r{opt_.name, opt_.capacity, {}};
  for (uint64_t id : held) {
    if (r.held_jobs.size() < msg::kMaxListLen) r.held_jobs.push_back(id);
  }
  r.labels = opt_.labels;
  r.serves_unnamed = opt_.serves_unnamed;
  // A --cache runner that may not take URLs from this dispatcher and was given none of its own
  // (--repo-url) can fetch no named repository: it says so, and the dispatcher keeps those jobs
  // for others (each would otherwise end here as a setup failure and cost an attempt).
  r.serves_all = opt_.serves_all && (opt_.trust_wire_command || !opt_.repo_urls.empty());
  send(r);
  last_register_ = clock_.now();
}

void Runner::on_frames(const std::string& header, const std::string& body) {
  msg::Decoded d = msg::decode(header, body);
  if (d.error == msg::DecodeError::kVersion) {
    // Nothing it sends can be read here, nor anything we send there: say so once and stop.
    if (version_error_.empty()) version_error_ = msg::dispatcher_version_line(d);
    return;
  }
  if (!d.ok()) {
    uint64_t held = 0;
    if (bad_log_.allow(clock_.now(), &held)) {
      spdlog::warn("dropped a bad message from the dispatcher: {} ({}){}", msg::to_string(d.error), d.detail,
                   LogLimiter::held_back(held));
    }
    return;
  }
  last_heard_ = clock_.now();
  std::visit(
      [&](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, msg::Welcome>) {
          if (!registered_) spdlog::info("registered with the dispatcher (heartbeat {} ms)", m.heartbeat_ms);
          registered_ = true;
          hb_ = Millis(m.heartbeat_ms);
          backoff_ = Millis(1000);
          reconnect_pending_ = false;
          welcome_urls_.clear();
          for (const auto& repo : m.repos) {
            if (!repo.url.empty()) welcome_urls_[repo.name] = repo.url;
          }
          if (draining_) send(msg::Drain{});
          for (auto& [key, p] : pending_) {
            send(p.result);
            p.last_sent = clock_.now();
          }
        } else if constexpr (std::is_same_v<T, msg::Job>) {
          accept_job(m);
        } else if constexpr (std::is_same_v<T, msg::ResultAck>) {
          on_ack(m);
        } else if constexpr (std::is_same_v<T, msg::Reregister>) {
          registered_ = false;
          send_register();
        } else if constexpr (std::is_same_v<T, msg::CancelJob>) {
          cancel_job(m.job_id);
        } else if constexpr (std::is_same_v<T, msg::Error>) {
          spdlog::warn("dispatcher says: {} ({})", m.text, msg::to_string(m.code));
        } else if constexpr (!std::is_same_v<T, msg::Heartbeat>) {
          spdlog::warn("ignoring unexpected {} from the dispatcher", msg::to_string(msg::type_of(m)));
        }
      },
      d.message);
}

void Runner::accept_job(const msg::Job& job) {
  for (const auto& s : slots_) {
    if (s.job && s.job->job_id == job.job_id) return;  // already ours
  }
  for (const auto& j : waiting_) {
    if (j.job_id == job.job_id) return;
  }
  if (auto it = pending_.find({job.job_id, job.attempt}); it != pending_.end()) {
    send(it->second.result);  // ran it already: deliver the result again
    return;
  }
  spdlog::info("job {} attempt {}: {} ({})", job.job_id, job.attempt, job.commit, job.branch);
  waiting_.push_back(job);
  start_next();
}

void Runner::start_next() {
  for (size_t i = 0; i < slots_.size() && !waiting_.empty();) {
    if (slots_[i].job) {
      ++i;
      continue;
    }
    slots_[i].job = waiting_.front();
    waiting_.pop_front();
    slots_[i].started_ms = clock_.wall_ms();
    Checkout c;
    std::string err;
    if (checkout_of(*slots_[i].job, &c, &err)) {
      start_checkout(static_cast<int>(i), std::move(c));
    } else {
      // This runner's shortcoming, not the commit's: the dispatcher may give it to another.
      spdlog::error("job {}: {}", slots_[i].job->job_id, err);
      finish(static_cast<int>(i), JobStatus::kError, msg::kExitSetupFailed, "simpleci: " + err + "\n", false);
    }
  }
}

bool Runner::checkout_of(const msg::Job& job, Checkout* c, std::string* err) const {
  *c = Checkout{job.repo, "", job.commit, job.branch};
  if (job.repo.empty()) {
    if (!opt_.serves_unnamed) *err = "this runner does not serve the unnamed repository (it was started without CLONE_DIR)";
    return opt_.serves_unnamed;
  }
  if (!opt_.serves_all) {
    *err = "this runner does not serve repository " + job.repo + " (it was started without --cache DIR)";
    return false;
  }
  if (auto it = opt_.repo_urls.find(job.repo); it != opt_.repo_urls.end()) {
    c->url = it->second;
    return true;
  }
  if (!opt_.trust_wire_command) {
    *err = "no URL for repository " + job.repo + ": give --repo-url " + job.repo +
           "=URL (the dispatcher is not authenticated)";
    return false;
  }
  c->url = job.url;
  if (auto it = welcome_urls_.find(job.repo); c->url.empty() && it != welcome_urls_.end()) c->url = it->second;
  if (c->url.empty()) {
    *err = "no URL for repository " + job.repo + ": give --repo-url " + job.repo + "=URL (the dispatcher sent none)";
    return false;
  }
  return true;
}

void Runner::start_checkout(int slot, Checkout c) {
  Slot& s = slots_[slot];
  s.checking_out = true;
  if (s.worker.joinable()) s.worker.join();
  // A thread per checkout, not one kept per slot: a kept thread made the runner's heap grow by
  // about 400 bytes a job over a 3,000-job soak (one per job stays flat); starting a thread
  // costs tens of microseconds.
  s.worker = std::thread([this, slot, c = std::move(c)] {
    CheckoutDone d{slot, Prepared::kFailed, "", ""};
    d.outcome = ws_.prepare(slot, c, &d.workdir, &d.error);
    {
      std::lock_guard<std::mutex> lock(done_mu_);
      done_.push_back(std::move(d));
    }
    uint64_t one = 1;
    (void)!::write(event_fd_, &one, sizeof one);
  });
}

void Runner::collect_checkouts() {
  uint64_t n;
  (void)!::read(event_fd_, &n, sizeof n);
  std::vector<CheckoutDone> done;
  {
    std::lock_guard<std::mutex> lock(done_mu_);
    done.swap(done_);
  }
  for (auto& d : done) {
    Slot& s = slots_[d.slot];
    if (s.worker.joinable()) s.worker.join();
    s.checking_out = false;
    if (s.cancelled || !s.job) {
      s.job.reset();
      s.cancelled = false;
      continue;
    }
    if (d.outcome != Prepared::kReady) {
      spdlog::error("job {}: {}", s.job->job_id, d.error);
      // A commit origin lacks is the commit's problem (final); anything else is this runner's.
      const int32_t code = d.outcome == Prepared::kMissingCommit ? -1 : msg::kExitSetupFailed;
      complete(d.slot, JobStatus::kError, code, "simpleci: " + d.error + "\n", false);
    } else {
      run_job(d.slot, d.workdir);
    }
  }
  start_next();
}

void Runner::wait_checkouts() {
  for (auto& s : slots_) {
    if (s.worker.joinable()) s.worker.join();
  }
  collect_checkouts();
}

void Runner::run_job(int slot, const std::string& workdir) {
  Slot& s = slots_[slot];
  const msg::Job& job = *s.job;
  RunSpec spec;
  spec.job_id = job.job_id;
  spec.workdir = workdir;
  fs::path own = fs::path(workdir) / ".simpleci" / "test";
  std::error_code ec;
  if (!job.job_name.empty()) {
    std::string why;
    const std::string program = job_program(workdir, job.job_name, &why);
    if (program.empty()) {
      spdlog::warn("job {}: {}", job.job_id, why);
      complete(slot, JobStatus::kError, -1, "simpleci: " + why + "\n", false);
      return;
    }
    spec.argv = {program};
  } else if (fs::is_regular_file(own, ec) && ::access(own.c_str(), X_OK) == 0) {
    spec.argv = {own.string()};
  } else {
    spec.argv = {"/bin/sh", "-c", command_for(job)};
  }
  spec.env = {"CI=true", "SIMPLECI_COMMIT=" + job.commit, "SIMPLECI_BRANCH=" + job.branch,
              "SIMPLECI_JOB=" + std::to_string(job.job_id), "SIMPLECI_REPO=" + job.repo,
              "SIMPLECI_JOB_NAME=" + job.job_name};
  spec.timeout_s = job.timeout_s;
  spec.output_cap = job.output_cap;
  std::string err;
  if (!exec_.start(spec, &err)) {
    complete(slot, JobStatus::kError, msg::kExitSetupFailed, "simpleci: " + err + "\n", false);
    return;
  }
  s.running = true;
}

const std::string& Runner::command_for(const msg::Job& job) {
  if (opt_.trust_wire_command) return job.test_command;
  if (job.test_command != opt_.test_command) {
    // Warn once per distinct command; a peer sending endless variants cannot grow the set.
    constexpr size_t kMaxRemembered = 64;
    if (!ignored_commands_.count(job.test_command) && ignored_commands_.size() < kMaxRemembered) {
      ignored_commands_.insert(job.test_command);
      spdlog::warn("job {}: ignoring the dispatcher's test command '{}' and running this runner's "
                   "--test-command '{}': the dispatcher is not authenticated (plain text; use CURVE "
                   "or a private ipc:// socket to let it choose)",
                   job.job_id, job.test_command, opt_.test_command);
    }
  }
  return opt_.test_command;
}

void Runner::complete(int slot, JobStatus st, int32_t exit_code, std::string output,
                      bool truncated) {
  finish(slot, st, exit_code, std::move(output), truncated);
  start_next();
}

void Runner::finish(int slot, JobStatus st, int32_t exit_code, std::string output, bool truncated) {
  Slot& s = slots_[slot];
  spdlog::info("job {} attempt {} {} (exit {}, {} bytes of output)", s.job->job_id, s.job->attempt,
               msg::to_string(st), exit_code, output.size());
  msg::Result r{s.job->job_id, s.job->attempt, st, exit_code, s.started_ms, clock_.wall_ms(),
                truncated, std::move(output)};
  std::string err;
  if (!held_.save(r, &err)) {
    spdlog::error("cannot save the result of job {} (kept in memory only): {}", r.job_id, err);
  }
  Pending& p = pending_[{r.job_id, r.attempt}];
  p = Pending{std::move(r), clock_.now()};
  if (registered_) send(p.result);
  s.job.reset();
  s.running = false;
  s.cancelled = false;
  if (draining_) drain_since_ = clock_.now();
}

void Runner::cancel_job(uint64_t job_id) {
  for (auto& s : slots_) {
    if (!s.job || s.job->job_id != job_id) continue;
    spdlog::info("job {} cancelled by the dispatcher", job_id);
    if (s.checking_out) {
      s.cancelled = true;  // freed when the checkout returns
    } else {
      if (s.running) exec_.cancel(job_id);
      s.job.reset();
      s.running = false;
    }
  }
  waiting_.erase(std::remove_if(waiting_.begin(), waiting_.end(),
                                [&](const msg::Job& j) { return j.job_id == job_id; }),
                 waiting_.end());
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->first.first == job_id) {
      held_.release(it->first.first, it->first.second);
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  start_next();
}

void Runner::on_ack(const msg::ResultAck& a) {
  if (pending_.erase({a.job_id, a.attempt}) == 0) return;
  held_.release(a.job_id, a.attempt);
}

bool Runner::output_to_stream(const Slot& s) const {
  if (!s.running) return false;
  const LiveBacklog* live = exec_.live(s.job->job_id);
  return live && live->size() > 0;
}

// Live output goes out at most every kStreamEvery per job (or as soon as a whole chunk is
// there): the loop now wakes for every pipe read, and a test printing line by line must not
// become a message per line. Bytes stay in the backlog while the link cannot take them; the
// backlog skips what it cannot hold.
void Runner::stream_output() {
  if (!registered_) return;
  const SteadyTime now = clock_.now();
  for (auto& s : slots_) {
    if (!output_to_stream(s)) continue;
    LiveBacklog* live = exec_.live(s.job->job_id);
    while (live->size() > 0) {
      const std::string_view chunk = live->front(msg::kMaxChunkBytes);
      if (chunk.size() < msg::kMaxChunkBytes && now - s.last_streamed < kStreamEvery) break;
      if (link_.output_in_flight() > kMaxLiveInFlight) return;
      if (!link_.send(msg::Output{s.job->job_id, s.job->attempt, live->offset(), std::string(chunk)})) break;
      live->pop(chunk.size());
      s.last_streamed = now;
    }
  }
}

// The end of a job's live output goes out before its RESULT, so a watcher has seen every byte
// when it hears that the job finished.
void Runner::stream_rest(const Slot& s, const Finished& f) {
  if (!registered_) return;
  for (size_t at = 0; at < f.unsent.size(); at += msg::kMaxChunkBytes) {
    const std::string chunk = f.unsent.substr(at, msg::kMaxChunkBytes);
    if (!link_.send(msg::Output{f.job_id, s.job->attempt, f.unsent_offset + at, chunk})) return;
  }
}

void Runner::tick() {
  SteadyTime now = clock_.now();
  for (auto& f : exec_.poll()) {
    for (size_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].running && slots_[i].job->job_id == f.job_id) {
        stream_rest(slots_[i], f);
        complete(static_cast<int>(i), f.status, f.exit_code, std::move(f.output), f.truncated);
        break;
      }
    }
  }
  stream_output();

  if (reconnect_pending_) {
    if (now >= reconnect_at_) {
      spdlog::info("reconnecting to the dispatcher");
      link_.reconnect();
      reconnect_pending_ = false;
      last_heard_ = now;
      send_register();
    }
    return;
  }
  Millis silence_limit = registered_ ? 3 * hb_ : std::max<Millis>(3 * hb_, Millis(3000));
  if (now - last_heard_ >= silence_limit) {
    spdlog::warn("the dispatcher is silent; reconnecting in {} ms", backoff_.count());
    registered_ = false;
    reconnect_pending_ = true;
    reconnect_at_ = now + backoff_;
    backoff_ = std::min(2 * backoff_, kMaxBackoff);
    return;
  }
  if (!registered_) {
    if (now - last_register_ >= kRegisterRepeat) send_register();
    return;
  }
  if (now - last_hb_sent_ >= hb_) {
    send(msg::Heartbeat{});
    last_hb_sent_ = now;
  }
  for (auto& [key, p] : pending_) {
    if (now - p.last_sent >= 3 * hb_) {
      send(p.result);
      p.last_sent = now;
    }
  }
}

void Runner::drain() {
  if (draining_) return;
  draining_ = true;
  drain_since_ = clock_.now();
  spdlog::info("draining: finishing {} job(s), taking no new ones", slots_used() + waiting_.size());
  if (registered_) send(msg::Drain{});
}

bool Runner::done() const {
  if (!version_error_.empty()) return true;
  if (!draining_ || slots_used() > 0 || !waiting_.empty()) return false;
  return pending_.empty() || clock_.now() - drain_since_ >= 3 * hb_;
}

size_t Runner::slots_used() const {
  return static_cast<size_t>(std::count_if(slots_.begin(), slots_.end(), [](const Slot& s) { return s.job.has_value(); }));
}

Millis Runner::next_wakeup() const {
  Millis sleep = std::clamp<Millis>(hb_ / 4, Millis(5), Millis(250));
  if (slots_used() == 0) return sleep;
  // Running jobs wake the loop themselves (output pipes, pidfds); what is left is their
  // timeouts and the live output held back by stream_output().
  sleep = std::min(sleep, exec_.max_sleep());
  for (const auto& s : slots_) {
    if (output_to_stream(s)) sleep = std::min(sleep, kStreamEvery);
  }
  return sleep;
}

}  // namespace simpleci::runner
