// The Dispatcher's side of runner sessions: REGISTER, RESULT, OUTPUT and DRAIN, heartbeats, and
// what happens to a runner's jobs when its session ends.
#include <algorithm>

#include <spdlog/spdlog.h>

#include "dispatcher/dispatcher.h"

namespace simpleci::dispatcher {

using msg::JobStatus;

void Dispatcher::on_register(std::string_view peer, int fd, const msg::Register& reg,
                             std::string_view user_id) {
  if (cfg_.require_identity && reg.name != user_id) {
    reject_reason("unauthorized", peer, "runner name '" + reg.name + "' but key '" +
                                            std::string(user_id) + "'");
    send_later(peer, msg::Error{0, msg::ErrorCode::kUnauthorized,
                                "runner name must be the name of its key: " + std::string(user_id)});
    return;
  }
  const std::set<uint64_t> held(reg.held_jobs.begin(), reg.held_jobs.end());
  if (runners_.find(reg.name)) {
    spdlog::info("runner {} registered again ({} jobs held)", reg.name, held.size());
  } else {
    spdlog::info("runner {} registered, capacity {}", reg.name, reg.capacity);
  }
  // A peer that registers under a new name drops its old session.
  if (Runner* old = runners_.session(peer); old && old->name != reg.name) {
    runner_lost(std::string(old->name), "renamed");
  }
  std::set<uint64_t> previous;
  Runner& r = runners_.add(reg.name, peer, fd, reg.capacity, clock_.now(), clock_.wall_ms(), &previous);
  r.labels = std::set<std::string>(reg.labels.begin(), reg.labels.end());
  r.serves_unnamed = reg.serves_unnamed;
  r.serves_all = reg.serves_all;
  if (!reg.labels.empty() || reg.serves_all || !reg.serves_unnamed) {
    std::string labels;
    for (const std::string& l : r.labels) labels += (labels.empty() ? "" : ",") + l;
    spdlog::info("runner {} has labels [{}] and serves {}{}", reg.name, labels,
                 reg.serves_unnamed ? "the unnamed repository" : "",
                 reg.serves_all ? (reg.serves_unnamed ? " and every declared one" : "every declared repository") : "");
  }
  claim(r, previous, held);
  publish_runner(msg::EventKind::kRunnerJoined, reg.name);
  send_later(peer, msg::Welcome{cfg_.heartbeat_ms, repos_for_peers()});
}

// Running jobs of a runner that registered: from its previous session, or found in the store
// after a restart. Those it still holds stay; the others were lost with its old process. Jobs it
// holds that are queued or run elsewhere now are cancelled on it.
void Dispatcher::claim(Runner& r, const std::set<uint64_t>& previous, const std::set<uint64_t>& held) {
  std::set<uint64_t> ours = previous;
  ours.merge(jobs_.orphans_of(r.name));
  for (uint64_t id : ours) {
    const Active* a = jobs_.find(id);
    if (!a || a->s.status != JobStatus::kRunning) continue;
    if (held.count(id)) {
      r.jobs.insert(id);
      jobs_.unorphan(id);
    } else {
      requeue(id, "its runner came back without it");
    }
  }
  for (uint64_t id : held) {
    if (r.jobs.count(id)) continue;
    if (const Active* a = jobs_.find(id)) {
      send_later(r.peer, msg::CancelJob{id, std::max<uint32_t>(1, a->s.attempt)});
    }
    // Jobs no longer active are left alone: the runner re-sends their results, which are
    // acknowledged as stale.
  }
}

void Dispatcher::on_result(Runner& r, msg::Result& res) {
  const Active* a = jobs_.find(res.job_id);
  const bool current = a && a->s.status == JobStatus::kRunning && a->s.attempt == res.attempt &&
                       a->s.runner == r.name;
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
  const int64_t started = res.started_at_ms ? res.started_at_ms : a->s.started_at_ms;
  const int64_t finished = res.finished_at_ms ? res.finished_at_ms : clock_.wall_ms();
  finish(res.job_id, Ending{res.status, res.exit_code, started, finished, res.truncated,
                            std::move(res.output)});
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
  if (jobs_.find(res.job_id)->s.attempt >= cfg_.max_attempts) return false;
  jobs_.avoid(res.job_id, r.name);
  requeue(res.job_id, "setup failed on its runner");
  return true;
}

// A chunk of a running job's output: kept for watchers (LiveOutput). Chunks of attempts that
// are no longer current, or of jobs the runner does not hold, are dropped.
void Dispatcher::on_output(Runner& r, const msg::Output& o) {
  counters_["output.bytes"] += o.data.size();
  const Active* a = jobs_.find(o.job_id);
  if (!r.jobs.count(o.job_id) || !a || a->s.attempt != o.attempt) {
    ++counters_["output.stale"];
    return;
  }
  live_.add(o.job_id, o.attempt, o.offset, o.data);
  publish_output(o);
}

void Dispatcher::runner_lost(const std::string& name, const char* why) {
  publish_runner(msg::EventKind::kRunnerLeft, name);
  std::set<uint64_t> jobs;
  if (!runners_.remove(name, &jobs)) return;
  spdlog::warn("runner {} lost ({}); {} job(s) to requeue", name, why, jobs.size());
  ++counters_["runners.lost"];
  for (uint64_t id : jobs) requeue(id, why);
}

// Heartbeats to the runners that need one; runners silent for 3 intervals are lost.
void Dispatcher::heartbeats() {
  const SteadyTime now = clock_.now();
  std::vector<std::string> dead;
  for (auto& [name, r] : runners_.all()) {
    if (now - r.last_seen >= 3 * hb_) {
      dead.push_back(name);
    } else if (now - r.last_sent >= hb_) {
      r.last_sent = now;
      send_later(r.peer, msg::Heartbeat{});
    }
  }
  for (const auto& name : dead) runner_lost(name, "silent for 3 heartbeat intervals");
}

}  // namespace simpleci::dispatcher
