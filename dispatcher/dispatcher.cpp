#include "dispatcher/dispatcher.h"

#include <poll.h>

#include <algorithm>

#include <spdlog/spdlog.h>

#include "dispatcher/results.h"
#include "net/reply_budget.h"
#include "messages/validate.h"

namespace simpleci::dispatcher {

using msg::JobStatus;

namespace {
// A result file write that failed is tried again after this, doubling up to the longest.
constexpr Millis kFirstFileRetry(250);
constexpr Millis kLongestFileRetry(30000);
}  // namespace

Dispatcher::Dispatcher(Clock& clock, Store& store, Outbox& out, Config cfg, Syncer* syncer)
    : clock_(clock),
      store_(store),
      out_(out),
      cfg_(std::move(cfg)),
      syncer_(syncer),
      hb_(cfg_.heartbeat_ms),
      started_(clock.now()),
      activity_since_(started_),
      next_prune_(started_) {
  if (cfg_.async_files) writer_ = std::make_unique<ResultWriter>(cfg_.results_dir, cfg_.fsync_results);
}

bool Dispatcher::recover(std::string* err) {
  std::vector<JobRow> rows;
  if (!store_.load_active(&rows, err)) return false;
  active_.clear();
  active_by_commit_.clear();
  queue_.clear();
  live_.clear();
  running_.clear();
  orphans_.clear();
  for (auto& [name, r] : runners_) r.jobs.clear();
  size_t orphans = 0;
  for (auto& row : rows) {
    Active a;
    a.s = row.summary;
    if (a.s.status == JobStatus::kQueued) {
      queue_.push_back(a.s.job_id);
    } else if (auto it = runners_.find(a.s.runner); it != runners_.end()) {
      it->second.jobs.insert(a.s.job_id);
      running_.insert(a.s.job_id);
    } else {
      a.orphaned = true;
      a.orphan_since = clock_.now();
      running_.insert(a.s.job_id);
      orphans_[a.s.runner].insert(a.s.job_id);
      ++orphans;
    }
    active_by_commit_[a.s.commit] = a.s.job_id;
    active_[a.s.job_id] = std::move(a);
  }
  if (!rows.empty()) {
    spdlog::info("store holds {} queued and {} running jobs", queue_.size(),
                 rows.size() - queue_.size());
  }
  if (orphans > 0) {
    spdlog::info("{} running jobs wait up to {} ms for their runners to return", orphans,
                 3 * hb_.count());
  }
  return true;
}

bool Dispatcher::reconcile_files(std::string* err) {
  ReconcileStats st;
  if (!reconcile_results(store_, cfg_.results_dir, cfg_.fsync_results, &st, err)) return false;
  counters_["results.rewritten"] += st.rewritten;
  counters_["results.file_errors"] += st.failed;
  for (const auto& [commit, id] : st.failed_jobs) {  // retried from tick(), like any failed write
    retries_[commit] = Retry{id, clock_.now() + kFirstFileRetry, kFirstFileRetry, false};
  }
  const bool news = st.rewritten > 0 || st.failed > 0 || st.temps_removed > 0;
  spdlog::log(news ? spdlog::level::info : spdlog::level::debug,
              "result files: {} commits checked against the store, {} rewritten, {} failed, {} "
              "leftover temporary files removed",
              st.checked, st.rewritten, st.failed, st.temps_removed);
  return true;
}

// ---- input ------------------------------------------------------------------------------

void Dispatcher::on_message(std::string_view peer, int fd, std::span<const std::string_view> frames,
                            std::string_view user_id) {
  if (frames.size() != 2) {
    reject(msg::DecodeError::kFrameCount, peer, std::to_string(frames.size()) + " frames", 0);
    return;
  }
  const msg::Peeked p = msg::peek(frames[1]);
  if (!allowed(peer, user_id, p)) return;
  msg::Decoded d = msg::decode(frames[0], frames[1], msg::kMaxRequestObjects);
  if (!d.ok()) {
    reject(d.error, peer, d.detail, p.request_id);
    return;
  }
  handle(peer, fd, d.message, user_id);
}

// Under CURVE: is the key still listed, and does its role allow this type of message? Checked
// before decoding, so a refused peer costs no decode and learns nothing about its fields.
bool Dispatcher::allowed(std::string_view peer, std::string_view user_id, const msg::Peeked& p) {
  if (!authorized_) return true;
  auto key = authorized_->find(user_id);
  if (key == authorized_->end()) {
    reject_reason("unauthorized", peer, "key '" + std::string(user_id) + "' is no longer authorised");
    if (Runner* r = session(peer)) runner_lost(std::string(r->name), "its key was revoked");
    send_later(peer, msg::Error{p.request_id, msg::ErrorCode::kUnauthorized,
                                "this key is no longer authorised"});
    return false;
  }
  if (role_allows(key->second, p.type)) return true;
  const std::string what(msg::to_string(static_cast<msg::MessageType>(p.type)));
  reject_reason("unauthorized", peer, "key '" + key->first + "' (" +
                                          std::string(to_string(key->second)) + ") sent " + what);
  send_later(peer, msg::Error{p.request_id, msg::ErrorCode::kUnauthorized,
                              "key '" + key->first + "' (" + std::string(to_string(key->second)) +
                                  ") may not send " + what});
  return false;
}

void Dispatcher::set_authorized(Authorized keys) {
  authorized_ = std::move(keys);
  std::vector<std::string> revoked;
  constexpr auto kRegister = static_cast<uint8_t>(msg::MessageType::kRegister);
  for (const auto& [name, r] : runners_) {
    auto key = authorized_->find(name);
    if (key == authorized_->end() || !role_allows(key->second, kRegister)) revoked.push_back(name);
  }
  for (const auto& name : revoked) runner_lost(name, "its key was revoked");
}

void Dispatcher::handle(std::string_view peer, int fd, msg::Message& m,
                        std::string_view user_id) {
  Runner* r = session(peer);
  if (r) {  // any message is a sign of life
    r->last_seen = clock_.now();
    r->last_seen_wall = clock_.wall_ms();
    if (fd >= 0) r->fd = fd;
  }
  auto need_session = [&]() -> Runner* {
    if (!r) {
      reject_reason("unregistered", peer, std::string(msg::to_string(msg::type_of(m))));
      send_later(peer, msg::Reregister{});
    }
    return r;
  };
  std::visit(
      [&](auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, msg::Register>) {
          on_register(peer, fd, v, user_id);
        } else if constexpr (std::is_same_v<T, msg::Heartbeat>) {
          need_session();
        } else if constexpr (std::is_same_v<T, msg::Output>) {
          if (Runner* s = need_session()) on_output(*s, v);
        } else if constexpr (std::is_same_v<T, msg::Result>) {
          if (Runner* s = need_session()) on_result(*s, v);
        } else if constexpr (std::is_same_v<T, msg::Drain>) {
          if (Runner* s = need_session()) {
            s->draining = true;
            spdlog::info("runner {} is draining ({} jobs left)", s->name, s->jobs.size());
          }
        } else if constexpr (std::is_same_v<T, msg::Commit>) {
          on_commit(peer, v);
        } else if constexpr (std::is_same_v<T, msg::StatusRequest>) {
          on_status(peer, v);
        } else if constexpr (std::is_same_v<T, msg::ResultsRequest>) {
          on_results(peer, v);
        } else if constexpr (std::is_same_v<T, msg::CancelRequest>) {
          on_cancel(peer, v);
        } else if constexpr (std::is_same_v<T, msg::RetryRequest>) {
          on_retry(peer, v);
        } else if constexpr (std::is_same_v<T, msg::WatchRequest>) {
          on_watch(peer, v);
        } else if constexpr (std::is_same_v<T, msg::PruneRequest>) {
          on_prune(peer, v);
        } else {
          std::string what(msg::to_string(msg::type_of(m)));
          reject_reason("unexpected_type", peer, what);
          // Never answer an ERROR with an ERROR: two confused peers would ping-pong forever.
          if constexpr (!std::is_same_v<T, msg::Error>) {
            send_later(peer, msg::Error{0, msg::ErrorCode::kBadRequest,
                                        "the dispatcher does not accept " + what});
          }
        }
      },
      m);
}

void Dispatcher::on_register(std::string_view peer, int fd, const msg::Register& reg,
                             std::string_view user_id) {
  if (cfg_.require_identity && reg.name != user_id) {
    reject_reason("unauthorized", peer, "runner name '" + reg.name + "' but key '" +
                                            std::string(user_id) + "'");
    send_later(peer, msg::Error{0, msg::ErrorCode::kUnauthorized,
                                "runner name must be the name of its key: " + std::string(user_id)});
    return;
  }
  std::set<uint64_t> held(reg.held_jobs.begin(), reg.held_jobs.end());
  std::set<uint64_t> previous;
  if (auto it = runners_.find(reg.name); it != runners_.end()) {
    previous = it->second.jobs;
    if (it->second.peer != peer) peers_.erase(it->second.peer);
    runners_.erase(it);
    spdlog::info("runner {} registered again ({} jobs held)", reg.name, held.size());
  } else {
    spdlog::info("runner {} registered, capacity {}", reg.name, reg.capacity);
  }
  // A peer that registers under a new name drops its old session.
  if (auto p = peers_.find(std::string(peer)); p != peers_.end()) runner_lost(p->second, "renamed");

  Runner& r = runners_[reg.name];
  r.name = reg.name;
  r.peer = std::string(peer);
  r.fd = fd;
  r.capacity = reg.capacity;
  r.last_seen = r.last_sent = clock_.now();
  r.last_seen_wall = clock_.wall_ms();
  peers_[r.peer] = r.name;

  // Running jobs of this runner: from its previous session, or found in the store after a
  // restart. Those it still holds stay; the others were lost with its old process.
  if (auto o = orphans_.find(reg.name); o != orphans_.end()) {
    previous.insert(o->second.begin(), o->second.end());
  }
  for (uint64_t id : previous) {
    auto it = active_.find(id);
    if (it == active_.end() || it->second.s.status != JobStatus::kRunning) continue;
    if (held.count(id)) {
      r.jobs.insert(id);
      unorphan(id, it->second);
    } else {
      requeue(id, "its runner came back without it");
    }
  }
  for (uint64_t id : held) {
    if (r.jobs.count(id)) continue;
    auto it = active_.find(id);
    if (it != active_.end()) {
      send_later(peer, msg::CancelJob{id, std::max<uint32_t>(1, it->second.s.attempt)});
    }
    // Jobs no longer active are left alone: the runner re-sends their results, which are
    // acknowledged as stale.
  }
  send_later(peer, msg::Welcome{cfg_.heartbeat_ms});
}

void Dispatcher::on_result(Runner& r, msg::Result& res) {
  auto it = active_.find(res.job_id);
  bool current = it != active_.end() && it->second.s.status == JobStatus::kRunning &&
                 it->second.s.attempt == res.attempt && it->second.s.runner == r.name;
  if (!current) {
    ++counters_["results.stale"];
    spdlog::debug("stale result for job {} attempt {} from {} acknowledged and dropped",
                 res.job_id, res.attempt, r.name);
    send_later(r.peer, msg::ResultAck{res.job_id, res.attempt});
    return;
  }
  if (res.status == JobStatus::kError && res.exit_code == msg::kExitSetupFailed) {
    if (setup_failed(r, res)) {
      send_later(r.peer, msg::ResultAck{res.job_id, res.attempt});
      return;
    }
  } else {
    r.setup_failures = 0;
  }
  int64_t started = res.started_at_ms ? res.started_at_ms : it->second.s.started_at_ms;
  int64_t finished = res.finished_at_ms ? res.finished_at_ms : clock_.wall_ms();
  finish(res.job_id, res.status, res.exit_code, started, finished, res.truncated, std::move(res.output));
  send_later(r.peer, msg::ResultAck{res.job_id, res.attempt});
}

// The runner could not set the job up (its clone, fetch or checkout failed). Runners that keep
// failing are paused, so a broken runner — free again at once — does not swallow the queue;
// the job is queued again, to go to another runner if there is one. False when the job has no
// attempts left (it then ends as `error` with the runner's message).
bool Dispatcher::setup_failed(Runner& r, const msg::Result& res) {
  constexpr uint32_t kPauseAfter = 2;
  constexpr auto kFirstPause = std::chrono::seconds(30);
  constexpr auto kLongestPause = std::chrono::seconds(300);
  ++counters_["jobs.setup_failed"];
  if (++r.setup_failures >= kPauseAfter) {
    const uint32_t doublings = std::min<uint32_t>(r.setup_failures - kPauseAfter, 4);
    const Millis pause = std::min<Millis>(kFirstPause * (1 << doublings), kLongestPause);
    r.paused_until = clock_.now() + pause;
    ++counters_["runners.paused"];
    spdlog::warn("runner {} failed to set up {} jobs in a row; no jobs for it for {} s", r.name,
                 r.setup_failures, pause.count() / 1000);
  }
  Active& a = active_.at(res.job_id);
  if (a.s.attempt >= cfg_.max_attempts) return false;
  a.avoid.insert(r.name);
  requeue(res.job_id, "setup failed on its runner");
  return true;
}

void Dispatcher::on_commit(std::string_view peer, const msg::Commit& c) {
  if (auto it = active_by_commit_.find(c.commit); it != active_by_commit_.end()) {
    send_later(peer, msg::Accepted{c.request_id, it->second, true});
    return;
  }
  if (!c.force) {
    std::string err;
    std::optional<JobRow> latest;
    if (!store_.latest_for_commit(c.commit, &latest, &err)) {
      // Not knowing whether the commit has a job must not queue it a second time.
      ++counters_["store.failures"];
      spdlog::error("cannot look up commit {}: {}", c.commit, err);
      send_later(peer, msg::Error{c.request_id, msg::ErrorCode::kStorageFailure, "cannot read the store; retry later"});
      return;
    }
    if (latest) {
      send_later(peer, msg::Accepted{c.request_id, latest->summary.job_id, true});
      return;
    }
  }
  if (refuse_if_full(peer, c.request_id)) return;
  uint64_t id = enqueue(c.commit, c.branch);
  if (id == 0) {
    send_later(peer, msg::Error{c.request_id, msg::ErrorCode::kStorageFailure, "cannot store the job"});
    return;
  }
  spdlog::debug("job {} queued: {} ({})", id, c.commit, c.branch.empty() ? "no branch" : c.branch);
  ++activity_.queued;
  send_later(peer, msg::Accepted{c.request_id, id, false});
}

// A new job past --max-queued is refused: a flood of commits cannot grow the queue, the store
// and the runners' work without bound. Jobs that are requeued (runner lost) are not counted
// against the limit: they were admitted already.
bool Dispatcher::refuse_if_full(std::string_view peer, uint64_t request_id) {
  if (queue_.size() < cfg_.max_queued) return false;
  ++counters_["jobs.refused_queue_full"];
  uint64_t held = 0;
  if (full_log_.allow(clock_.now(), &held)) {
    spdlog::warn("queue full ({} jobs queued, --max-queued {}): a new job was refused{}",
                 queue_.size(), cfg_.max_queued,
                 held ? " [" + std::to_string(held) + " similar lines held back]" : "");
  }
  send_later(peer, msg::Error{request_id, msg::ErrorCode::kQueueFull,
                              std::to_string(queue_.size()) + " jobs queued, the limit is " +
                                  std::to_string(cfg_.max_queued)});
  return true;
}

// ---- bad input --------------------------------------------------------------------------

void Dispatcher::reject(msg::DecodeError why, std::string_view peer, const std::string& detail,
                        uint64_t request_id) {
  reject_reason(std::string(msg::to_string(why)), peer, detail);
  if (why == msg::DecodeError::kVersion) {
    send_later(peer, msg::Error{request_id, msg::ErrorCode::kVersionMismatch,
                                "this dispatcher speaks protocol version " +
                                    std::to_string(msg::kProtocolVersion)});
  } else if (why == msg::DecodeError::kBadField) {
    send_later(peer, msg::Error{request_id, msg::ErrorCode::kBadRequest, detail.substr(0, 1000)});
  }
}

void Dispatcher::reject_reason(const std::string& reason, std::string_view peer,
                               const std::string& detail) {
  ++counters_["rejected." + reason];
  uint64_t held = 0;
  if (bad_log_.allow(clock_.now(), &held)) {
    auto it = peers_.find(std::string(peer));
    spdlog::warn("dropped a message from {}: {} ({}){}",
                 it != peers_.end() ? "runner " + it->second : "an unregistered peer", reason,
                 detail.substr(0, 200),
                 held ? " [" + std::to_string(held) + " similar lines held back]" : "");
  }
}

// ---- state changes ----------------------------------------------------------------------

bool Dispatcher::store_ok(bool ok, const std::string& err) {
  if (!ok && !tx_failed_) {
    tx_failed_ = true;
    tx_error_ = err;
  }
  return ok;
}

uint64_t Dispatcher::enqueue(const std::string& commit, const std::string& branch) {
  std::string err;
  if (!store_ok(store_.begin(&err), err)) return 0;
  int64_t now = clock_.wall_ms();
  uint64_t id = store_.insert_job(commit, branch, now, &err);
  if (!store_ok(id != 0, err)) return 0;
  Active a;
  a.s.job_id = id;
  a.s.commit = commit;
  a.s.branch = branch;
  a.s.status = JobStatus::kQueued;
  a.s.created_at_ms = now;
  active_[id] = std::move(a);
  active_by_commit_[commit] = id;
  queue_.push_back(id);
  return id;
}

void Dispatcher::requeue(uint64_t job_id, const char* why) {
  auto it = active_.find(job_id);
  if (it == active_.end()) return;
  msg::JobSummary& s = it->second.s;
  if (auto r = runners_.find(s.runner); r != runners_.end()) r->second.jobs.erase(job_id);
  live_.erase(job_id);
  if (s.attempt + 1 > cfg_.max_attempts) {
    spdlog::warn("job {} ({}) gave up after {} attempts: {}", job_id, s.commit, s.attempt, why);
    finish(job_id, JobStatus::kError, -1, s.started_at_ms, clock_.wall_ms(), false,
           "simpleci: the job was lost " + std::to_string(s.attempt) +
               " times (last: " + why + "); giving up\n");
    return;
  }
  std::string err;
  int64_t pos = store_.min_queue_pos() - 1;
  if (!store_ok(store_.begin(&err), err) || !store_ok(store_.requeue(job_id, pos, &err), err)) return;
  spdlog::info("job {} back to the front of the queue ({}), next attempt {}", job_id, why,
               s.attempt + 1);
  unorphan(job_id, it->second);
  running_.erase(job_id);
  s.status = JobStatus::kQueued;
  s.runner.clear();
  s.started_at_ms = 0;
  queue_.push_front(job_id);
  ++counters_["jobs.requeued"];
}

// A chunk of a running job's output: kept (the newest live_window bytes or more) for watchers.
// Chunks of attempts that are no longer current are dropped; a repeated chunk (the runner
// resends after a reconnect) adds nothing; a gap restarts the window after it.
void Dispatcher::on_output(Runner& r, const msg::Output& o) {
  counters_["output.bytes"] += o.data.size();
  auto a = active_.find(o.job_id);
  if (!r.jobs.count(o.job_id) || a == active_.end() || a->second.s.attempt != o.attempt) {
    ++counters_["output.stale"];
    return;
  }
  Live& l = live_[o.job_id];
  if (l.attempt != o.attempt) l = Live{o.attempt, 0, {}};
  uint64_t end = l.base + l.data.size();
  if (o.offset > end) {
    l.data.clear();
    l.base = end = o.offset;
  }
  if (o.offset + o.data.size() <= end) return;
  l.data.append(o.data, static_cast<size_t>(end - o.offset));
  if (l.data.size() > 2 * cfg_.live_window) {
    size_t drop = l.data.size() - cfg_.live_window;
    l.data.erase(0, drop);
    l.base += drop;
  }
}

void Dispatcher::finish(uint64_t job_id, JobStatus st, int32_t exit_code, int64_t started,
                        int64_t finished, bool truncated, std::string output) {
  auto it = active_.find(job_id);
  if (it == active_.end()) return;
  msg::JobSummary s = it->second.s;
  bool was_queued = s.status == JobStatus::kQueued;
  s.status = st;
  s.exit_code = exit_code;
  s.started_at_ms = started;
  s.finished_at_ms = finished;
  s.duration_ms = started > 0 && finished >= started ? finished - started : 0;
  s.truncated = truncated;
  std::string err;
  if (!store_ok(store_.begin(&err), err) || !store_ok(store_.finish(s, output, &err), err)) return;
  if (auto r = runners_.find(s.runner); r != runners_.end()) r->second.jobs.erase(job_id);
  if (was_queued) queue_.erase(std::find(queue_.begin(), queue_.end(), job_id));
  unorphan(job_id, it->second);
  running_.erase(job_id);
  active_by_commit_.erase(s.commit);
  active_.erase(it);
  live_.erase(job_id);
  ++counters_[std::string("jobs.") + std::string(msg::to_string(st))];
  ++activity_.finished;
  ++activity_.by_status[std::string(msg::to_string(st))];
  retries_.erase(s.commit);  // this newer result's files replace whatever failed before
  spdlog::debug("job {} {}: {} on {} (attempt {}, {} ms)", job_id, msg::to_string(st), s.commit,
               s.runner.empty() ? "-" : s.runner, s.attempt, s.duration_ms);
  files_bytes_ += output.size();
  files_.emplace_back(std::move(s), std::move(output));
}

void Dispatcher::unorphan(uint64_t job_id, Active& a) {
  if (!a.orphaned) return;
  a.orphaned = false;
  auto o = orphans_.find(a.s.runner);
  if (o == orphans_.end()) return;
  o->second.erase(job_id);
  if (o->second.empty()) orphans_.erase(o);
}

void Dispatcher::runner_lost(const std::string& name, const char* why) {
  auto it = runners_.find(name);
  if (it == runners_.end()) return;
  std::set<uint64_t> jobs = it->second.jobs;
  spdlog::warn("runner {} lost ({}); {} job(s) to requeue", name, why, jobs.size());
  peers_.erase(it->second.peer);
  runners_.erase(it);
  ++counters_["runners.lost"];
  for (uint64_t id : jobs) requeue(id, why);
}

// The free runner for a job: not draining or paused, with a free slot, the fewest jobs, the
// search starting at a rotating point to spread work. A runner the job could not be set up on is
// taken only when no other runner could ever take it.
Dispatcher::Runner* Dispatcher::pick_runner(const Active& a) {
  Runner* best = nullptr;
  Runner* fallback = nullptr;
  bool others = false;
  const SteadyTime now = clock_.now();
  size_t n = runners_.size();
  auto it = runners_.begin();
  std::advance(it, n ? rr_ % n : 0);
  for (size_t i = 0; i < n; ++i, ++it) {
    if (it == runners_.end()) it = runners_.begin();
    Runner& r = it->second;
    if (r.draining || now < r.paused_until) continue;
    const bool avoided = a.avoid.count(r.name) > 0;
    others |= !avoided;
    if (r.jobs.size() >= r.capacity) continue;
    Runner*& pick = avoided ? fallback : best;
    if (!pick || r.jobs.size() < pick->jobs.size()) pick = &r;
  }
  return best ? best : (others ? nullptr : fallback);
}

// Oldest queued job first. A job waiting for a runner it has not failed on lets the jobs behind
// it go ahead (looking at most kScan jobs deep).
void Dispatcher::dispatch() {
  constexpr size_t kScan = 64;
  size_t skipped = 0;
  auto pos = queue_.begin();
  while (pos != queue_.end() && skipped < kScan) {
    const uint64_t id = *pos;
    Active& a = active_.at(id);
    Runner* best = pick_runner(a);
    if (!best) {
      if (a.avoid.empty()) return;  // no free runner at all
      ++pos;
      ++skipped;
      continue;
    }
    ++rr_;
    std::string err;
    uint32_t attempt = a.s.attempt + 1;
    int64_t now = clock_.wall_ms();
    if (!store_ok(store_.begin(&err), err) ||
        !store_ok(store_.mark_running(id, attempt, best->name, now, &err), err)) {
      return;
    }
    pos = queue_.erase(pos);
    a.s.status = JobStatus::kRunning;
    a.s.attempt = attempt;
    a.s.runner = best->name;
    a.s.started_at_ms = now;
    best->jobs.insert(id);
    running_.insert(id);
    msg::Job job{id, attempt, a.s.commit, a.s.branch, cfg_.test_command, cfg_.job_timeout_s,
                 cfg_.output_cap};
    send_later(best->peer, std::move(job));
  }
}

// ---- time -------------------------------------------------------------------------------

void Dispatcher::on_disconnect(int fd) {
  for (auto& [name, r] : runners_) {
    if (r.fd == fd) {
      runner_lost(std::string(name), "connection closed");
      return;
    }
  }
}

void Dispatcher::tick() {
  SteadyTime now = clock_.now();
  std::vector<std::string> dead;
  for (auto& [name, r] : runners_) {
    if (now - r.last_seen >= 3 * hb_) {
      dead.push_back(name);
    } else if (now - r.last_sent >= hb_) {
      r.last_sent = now;
      send_later(r.peer, msg::Heartbeat{});
    }
  }
  for (const auto& name : dead) runner_lost(name, "silent for 3 heartbeat intervals");

  // Running jobs nobody claimed after a restart, and jobs whose runner never reports even though
  // their timeout passed long ago (a backstop; the runner enforces the timeout itself).
  std::vector<uint64_t> orphans, overdue;
  int64_t wall = clock_.wall_ms();
  int64_t limit_ms = (static_cast<int64_t>(cfg_.job_timeout_s) + 60) * 1000;
  for (uint64_t id : running_) {
    const Active& a = active_.at(id);
    if (a.orphaned && now - a.orphan_since >= 3 * hb_) orphans.push_back(id);
    else if (!a.orphaned && a.s.started_at_ms > 0 && wall - a.s.started_at_ms > limit_ms) overdue.push_back(id);
  }
  for (uint64_t id : orphans) requeue(id, "its runner did not come back after the restart");
  for (uint64_t id : overdue) {
    const msg::JobSummary s = active_[id].s;
    if (auto r = runners_.find(s.runner); r != runners_.end()) {
      send_later(r->second.peer, msg::CancelJob{id, std::max<uint32_t>(1, s.attempt)});
    }
    finish(id, JobStatus::kTimeout, -1, s.started_at_ms, wall, false,
           "simpleci: no result within the job timeout plus 60 s\n");
  }
  retry_files();
  prune_periodically();
  log_activity(false);
}

// Per-job lines are debug; this info line sums them up at most every 10 s (and only when
// something happened), so a busy dispatcher's log grows with time, not with traffic.
void Dispatcher::log_activity(bool force) {
  constexpr auto kEvery = std::chrono::seconds(10);
  const SteadyTime now = clock_.now();
  if (!force && now - activity_since_ < kEvery) return;
  if (activity_.queued > 0 || activity_.finished > 0) {
    std::string by;
    for (const auto& [status, n] : activity_.by_status) {
      by += (by.empty() ? "" : ", ") + std::to_string(n) + " " + status;
    }
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(now - activity_since_).count();
    spdlog::info("last {} s: {} queued, {} finished{}; {} waiting, {} running", secs,
                 activity_.queued, activity_.finished, by.empty() ? "" : " (" + by + ")",
                 queue_.size(), active_.size() - queue_.size());
  }
  activity_ = Activity{};
  activity_since_ = now;
}

// ---- output -----------------------------------------------------------------------------

void Dispatcher::send_later(std::string_view peer, msg::Message m) {
  if (net::carries_output(m)) output_pending_.emplace(peer);
  deferred_.push_back({std::string(peer), std::move(m)});
}

// One output-carrying reply per peer at a time: a client asking for outputs and not reading
// them would otherwise make the dispatcher read and hold 16 MiB per request.
bool Dispatcher::output_busy(std::string_view peer, uint64_t request_id) {
  if (!output_pending_.contains(peer) && !out_.output_in_flight(peer)) return false;
  ++counters_["send.over_budget"];
  send_later(peer, msg::Error{request_id, msg::ErrorCode::kBusy, msg::kBusyText});
  return true;
}

void Dispatcher::send_now(std::string_view peer, const msg::Message& m) {
  if (!out_.send(peer, m)) ++counters_["send.dropped"];
}

namespace {
// Replies that promise nothing a crash could take back leave right after the COMMIT; the others
// wait for the round's flush (see dispatcher.h).
bool needs_flush(const msg::Message& m) {
  return std::holds_alternative<msg::Accepted>(m) || std::holds_alternative<msg::ResultAck>(m) ||
         std::holds_alternative<msg::Ok>(m) || std::holds_alternative<msg::Error>(m);
}
}  // namespace

bool Dispatcher::flush() {
  dispatch();
  bool ok = !tx_failed_;
  std::string err = tx_error_;
  bool wrote = false;
  if (ok && store_.in_transaction()) {
    const SteadyTime t0 = clock_.now();
    ok = store_.commit(&err);
    wrote = ok;
    // The commit does not flush the disk (the syncer does); one that still holds the loop for
    // long (a checkpoint, a huge round) is worth knowing about: peers hear nothing meanwhile.
    if (const auto took = clock_.now() - t0; took >= hb_) {
      spdlog::warn("the store's commit took {} ms; the heartbeat interval is {} ms",
                   std::chrono::duration_cast<Millis>(took).count(), hb_.count());
    }
  }
  if (!ok) store_.rollback();
  std::vector<Deferred> out;
  out.swap(deferred_);
  output_pending_.clear();
  if (ok) {
    if (wrote) ++committed_seq_;
    ResultWriter::Batch b;
    b.files.swap(files_);
    b.removals.swap(removals_);
    b.output_bytes = std::exchange(files_bytes_, 0);
    hold_or_send(std::move(out), std::move(b));
    if (wrote && syncer_) syncer_->committed(committed_seq_);
    return true;
  }
  ++counters_["store.failures"];
  spdlog::error("store commit failed, nothing of this round was kept: {}", err);
  files_.clear();
  files_bytes_ = 0;
  removals_.clear();
  std::vector<Deferred> answers;
  for (auto& d : out) {
    std::visit(
        [&](auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, msg::Accepted> || std::is_same_v<T, msg::Ok>) {
            answers.push_back({std::move(d.peer),
                               msg::Error{v.request_id, msg::ErrorCode::kStorageFailure,
                                          "the dispatcher cannot write its store; retry later"}});
          } else if constexpr (!std::is_same_v<T, msg::Job> && !std::is_same_v<T, msg::ResultAck>) {
            answers.push_back({std::move(d.peer), std::move(v)});
          }
        },
        d.m);
  }
  // Nothing new committed: the ERRORs wait only for the rounds before (per-peer order).
  hold_or_send(std::move(answers), ResultWriter::Batch{});
  tx_failed_ = false;
  tx_error_.clear();
  reload();
  return false;
}

// A round's replies after its COMMIT (or after nothing to commit): those that need no flush go
// now; the rest, with the round's files, go once the newest committed round is durable. A round
// that committed nothing still waits for the rounds before it, whose state its replies may tell
// (a result acknowledged as stale because an unflushed round finished the job).
void Dispatcher::hold_or_send(std::vector<Deferred> out, ResultWriter::Batch files) {
  if (sync_failed_) return;  // nothing can be promised any more; the dispatcher is stopping
  const size_t bytes = files.output_bytes;
  std::vector<Deferred> later;
  for (auto& d : out) {
    if (needs_flush(d.m)) later.push_back(std::move(d));
    else send_now(d.peer, d.m);
  }
  if (!syncer_ || (committed_seq_ <= durable_seq_ && held_.empty())) {
    release(later, files);
    return;
  }
  if (later.empty() && files.files.empty() && files.removals.empty()) return;
  if (!held_.empty() && held_.back().seq == committed_seq_) {  // same flush: join that round
    Held& h = held_.back();
    for (auto& d : later) h.replies.push_back(std::move(d));
    for (auto& f : files.files) h.files.files.push_back(std::move(f));
    for (auto& r : files.removals) h.files.removals.push_back(std::move(r));
    h.files.output_bytes += files.output_bytes;
  } else {
    held_.push_back(Held{committed_seq_, std::move(later), std::move(files)});
  }
  held_bytes_ += bytes;
}

// The round is on the disk: its replies go, and its files are written (a view of durable
// results), on the writer thread or here.
void Dispatcher::release(std::vector<Deferred>& replies, ResultWriter::Batch& b) {
  for (const auto& d : replies) send_now(d.peer, d.m);
  if (b.files.empty() && b.removals.empty()) return;
  if (writer_) {
    writer_backlog_ += b.files.size();
    writer_backlog_bytes_ += b.output_bytes;
    writer_->push(std::move(b));
  } else {
    ResultWriter::write(cfg_.results_dir, cfg_.fsync_results, b);
    files_done(b);
  }
}

bool Dispatcher::on_synced() {
  if (!syncer_ || sync_failed_) return !sync_failed_;
  uint64_t seq = 0;
  std::string err;
  if (!syncer_->durable(&seq, &err)) {
    sync_failed_ = true;
    spdlog::error("{}; the disk may have dropped the store's last writes: stopping without sending "
                  "the {} round(s) of replies that waited for it (peers re-send; the store is "
                  "recovered at start)",
                  err, held_.size());
    held_.clear();
    held_bytes_ = 0;
    return false;
  }
  durable_seq_ = std::max(durable_seq_, seq);
  while (!held_.empty() && held_.front().seq <= durable_seq_) {
    Held h = std::move(held_.front());
    held_.pop_front();
    held_bytes_ -= std::min(held_bytes_, h.files.output_bytes);
    release(h.replies, h.files);
  }
  return true;
}

void Dispatcher::on_written() {
  if (!writer_) return;
  for (auto& b : writer_->take_done()) {
    writer_backlog_ -= std::min(writer_backlog_, b.files.size());
    writer_backlog_bytes_ -= std::min(writer_backlog_bytes_, b.output_bytes);
    files_done(b);
  }
}

// The writer's verdict on a batch: a retried write that worked ends its retry; a failed one is
// (re)scheduled with backoff, unless a newer result of the same commit has replaced it.
void Dispatcher::files_done(ResultWriter::Batch& b) {
  std::set<uint64_t> failed;
  for (const auto& [s, why] : b.failed) {
    failed.insert(s.job_id);
    ++counters_["results.file_errors"];
    auto [it, fresh] = retries_.try_emplace(s.commit, Retry{s.job_id, {}, kFirstFileRetry, false});
    Retry& r = it->second;
    if (!fresh && r.job_id > s.job_id) continue;  // a newer result's write is pending
    if (fresh || r.job_id != s.job_id) r.backoff = kFirstFileRetry;
    else if (r.in_flight) r.backoff = std::min(r.backoff * 2, kLongestFileRetry);
    r.job_id = s.job_id;
    r.in_flight = false;
    r.due = clock_.now() + r.backoff;
    uint64_t held = 0;
    if (file_log_.allow(clock_.now(), &held)) {
      spdlog::error("cannot write the result files of job {} ({}): {}; retrying in {} ms{}",
                    s.job_id, s.commit, why, r.backoff.count(),
                    held ? " [" + std::to_string(held) + " similar lines held back]" : "");
    }
  }
  for (const auto& [s, output] : b.files) {
    auto it = retries_.find(s.commit);
    if (it != retries_.end() && it->second.job_id == s.job_id && it->second.in_flight &&
        !failed.count(s.job_id)) {
      spdlog::info("result files of job {} ({}) written at last", s.job_id, s.commit);
      retries_.erase(it);
    }
  }
}

// Due retries: each job's output is read again from the store (nothing waits in memory while
// the disk is failing) and handed to the writer. At most kBytesPerRound of output per round, so
// a long list of retries never stalls the loop.
void Dispatcher::retry_files() {
  constexpr size_t kBytesPerRound = 16u << 20;
  if (retries_.empty()) return;
  const SteadyTime now = clock_.now();
  size_t bytes = 0;
  std::vector<std::string> gone;
  for (auto& [commit, r] : retries_) {
    if (r.in_flight || now < r.due) continue;
    if (bytes >= kBytesPerRound) break;
    std::string err;
    std::optional<JobRow> row;
    uint64_t owner = 0;
    if (!store_.job(r.job_id, &row, &err) || !store_.newest_final(commit, &owner, &err)) {
      spdlog::error("cannot read job {} to retry its result files: {}", r.job_id, err);
      r.due = now + r.backoff;
      continue;
    }
    if (!row || row->pruned || owner != r.job_id) {  // pruned, or replaced by a newer result
      gone.push_back(commit);
      continue;
    }
    std::string output;
    if (!store_.output(r.job_id, &output, &err)) {
      spdlog::error("cannot read job {} to retry its result files: {}", r.job_id, err);
      r.due = now + r.backoff;
      continue;
    }
    ++counters_["results.file_retries"];
    r.in_flight = true;
    bytes += output.size();
    files_bytes_ += output.size();
    files_.emplace_back(row->summary, std::move(output));
  }
  for (const auto& c : gone) retries_.erase(c);
}

size_t Dispatcher::prune(uint32_t days, size_t limit) {
  const int64_t cutoff = clock_.wall_ms() - static_cast<int64_t>(days) * 24 * 3600 * 1000;
  std::vector<PrunedJob> pruned;
  std::string err;
  if (!store_ok(store_.begin(&err), err) || !store_ok(store_.prune(cutoff, limit, &pruned, &err), err)) {
    return 0;
  }
  for (const PrunedJob& p : pruned) {
    if (!p.owns_files) continue;
    removals_.push_back(p.commit);
    if (auto it = retries_.find(p.commit); it != retries_.end() && it->second.job_id == p.job_id) {
      retries_.erase(it);
    }
  }
  counters_["jobs.pruned"] += pruned.size();
  return pruned.size();
}

// --prune-after-days: a pass every hour, one bounded batch per tick until nothing is left, so
// no round stalls on a large history.
void Dispatcher::prune_periodically() {
  constexpr size_t kBatch = 100;
  constexpr auto kEvery = std::chrono::hours(1);
  if (cfg_.prune_after_days == 0 || (!pruning_ && clock_.now() < next_prune_)) return;
  const size_t n = prune(cfg_.prune_after_days, kBatch);
  if (n > 0) spdlog::info("pruned {} job(s) finished more than {} days ago", n, cfg_.prune_after_days);
  pruning_ = n == kBatch;
  if (!pruning_) next_prune_ = clock_.now() + kEvery;
}

void Dispatcher::finish_writes() {
  while (syncer_ && !held_.empty() && !sync_failed_) {
    pollfd p{syncer_->fd(), POLLIN, 0};
    ::poll(&p, 1, 100);
    on_synced();
  }
  while (writer_ && writer_->busy()) {
    pollfd p{writer_->fd(), POLLIN, 0};
    ::poll(&p, 1, 100);
    on_written();
  }
}

bool Dispatcher::reload() {
  std::string err;
  bool ok = recover(&err);
  if (!ok) spdlog::error("cannot reload the store: {}", err);
  return ok;
}

Dispatcher::Runner* Dispatcher::session(std::string_view peer) {
  auto it = peers_.find(std::string(peer));
  if (it == peers_.end()) return nullptr;
  auto r = runners_.find(it->second);
  return r == runners_.end() ? nullptr : &r->second;
}

std::vector<msg::Counter> Dispatcher::counters() const {
  std::map<std::string, uint64_t> all = counters_;
  if (uint64_t n = out_.over_budget()) all["send.over_budget"] += n;
  std::vector<msg::Counter> out;
  for (const auto& [name, v] : all) {
    if (out.size() < msg::kMaxCounters) out.push_back({name, v});
  }
  return out;
}

uint64_t Dispatcher::counter(const std::string& name) const {
  auto it = counters_.find(name);
  const uint64_t extra = name == "send.over_budget" ? out_.over_budget() : 0;
  return (it == counters_.end() ? 0 : it->second) + extra;
}

}  // namespace simpleci::dispatcher
