// The Dispatcher's state changes of jobs: queued, dispatched, requeued, finished, pruned. Each is
// written to this round's transaction first and applied to the JobQueue, the RunnerRegistry and
// LiveOutput only when the store took it; a failed write marks the round failed (store_ok), so
// flush() rolls it back and reloads the state from the store.
#include <algorithm>

#include <spdlog/spdlog.h>

#include "dispatcher/dispatcher.h"
#include "dispatcher/results.h"

namespace simpleci::dispatcher {

using msg::JobStatus;

bool Dispatcher::store_ok(bool ok, const std::string& err) {
  if (!ok && !tx_failed_) {
    tx_failed_ = true;
    tx_error_ = err;
  }
  return ok;
}

uint64_t Dispatcher::enqueue(msg::JobSummary s, uint32_t timeout_s) {
  std::string err;
  if (!store_ok(store_.begin(&err), err)) return 0;
  s.created_at_ms = clock_.wall_ms();
  const uint64_t id = store_.insert(s, timeout_s, &err);
  if (!store_ok(id != 0, err)) return 0;
  s.job_id = id;
  jobs_.add(std::move(s), timeout_s);
  publish_job(msg::EventKind::kJobQueued, id);
  return id;
}

void Dispatcher::requeue(uint64_t job_id, const char* why) {
  const Active* a = jobs_.find(job_id);
  if (!a || a->s.status != JobStatus::kRunning) return;
  const msg::JobSummary s = a->s;
  runners_.release(s.runner, job_id);
  live_.erase(job_id);
  if (s.attempt + 1 > cfg_.max_attempts) {
    spdlog::warn("job {} ({}) gave up after {} attempts: {}", job_id, s.commit, s.attempt, why);
    finish(job_id, Ending{JobStatus::kError, -1, s.started_at_ms, clock_.wall_ms(), false,
                          "simpleci: the job was lost " + std::to_string(s.attempt) +
                              " times (last: " + why + "); giving up\n"});
    return;
  }
  std::string err;
  int64_t front = 0;
  if (!store_ok(store_.begin(&err), err) || !store_ok(store_.min_queue_pos(&front, &err), err) ||
      !store_ok(store_.requeue(job_id, front - 1, &err), err)) {
    return;
  }
  spdlog::info("job {} back to the front of the queue ({}), next attempt {}", job_id, why,
               s.attempt + 1);
  jobs_.requeue(job_id);
  publish_job(msg::EventKind::kJobRequeued, job_id, s.runner);
  ++counters_["jobs.requeued"];
}

void Dispatcher::finish(uint64_t job_id, Ending e) {
  const Active* a = jobs_.find(job_id);
  if (!a) return;
  msg::JobSummary s = a->s;
  s.status = e.status;
  s.exit_code = e.exit_code;
  s.started_at_ms = e.started_ms;
  s.finished_at_ms = e.finished_ms;
  s.duration_ms = e.started_ms > 0 && e.finished_ms >= e.started_ms ? e.finished_ms - e.started_ms : 0;
  s.truncated = e.truncated;
  std::string err;
  if (!store_ok(store_.begin(&err), err) || !store_ok(store_.finish(s, e.output, &err), err)) return;
  runners_.release(s.runner, job_id);
  jobs_.remove(job_id);
  live_.erase(job_id);
  const std::string status(msg::to_string(e.status));
  ++counters_["jobs." + status];
  if (s.started_at_ms > 0) duration_hist_.observe(s.duration_ms);
  ++activity_.finished;
  ++activity_.by_status[status];
  spdlog::debug("job {} {}: {} on {} (attempt {}, {} ms)", job_id, status, s.commit,
                s.runner.empty() ? "-" : s.runner, s.attempt, s.duration_ms);
  publish_job(msg::EventKind::kJobFinished, s, s.runner);
  files_.add(std::move(s), std::move(e.output));
}

// Requeued jobs first, then the repositories' queues in turns (JobQueue::walk_queue), each job to
// the free runner RunnerRegistry::pick chooses among those that serve its repository and have
// its labels. A job that no free runner may take lets the jobs behind it go ahead (looking at most
// kScan jobs deep in each queue); a repository at its --repo-limit waits for its next turn.
void Dispatcher::dispatch() {
  constexpr size_t kScan = 64;
  using Pick = JobQueue::Pick;
  const SteadyTime now_steady = clock_.now();
  jobs_.walk_queue(kScan, [&](Active& a) {
    if (!runners_.any_free(now_steady)) return Pick::kStop;
    if (!a.s.repo.empty()) {
      const msg::RepoInfo* info = repo_info(a.s.repo);
      if (info && info->limit > 0 && jobs_.running_in(a.s.repo) >= info->limit) return Pick::kSkipLane;
    }
    Runner* best = runners_.pick(Needs{a.s.repo, a.s.labels}, a.avoid, now_steady);
    if (!best) return Pick::kSkip;
    runners_.rotate();
    std::string err;
    const uint32_t attempt = a.s.attempt + 1;
    const int64_t now = clock_.wall_ms();
    if (!store_ok(store_.begin(&err), err) ||
        !store_ok(store_.mark_running(a.s.job_id, attempt, best->name, now, &err), err)) {
      return Pick::kStop;
    }
    if (attempt == 1) wait_hist_.observe(now - a.s.created_at_ms);
    a.s.attempt = attempt;
    a.s.runner = best->name;
    a.s.started_at_ms = now;
    best->jobs.insert(a.s.job_id);
    const msg::RepoInfo* info = repo_info(a.s.repo);
    send_later(best->peer, msg::Job{a.s.job_id, attempt, a.s.commit, a.s.branch, cfg_.test_command,
                                    a.timeout_s > 0 ? a.timeout_s : cfg_.job_timeout_s, cfg_.output_cap,
                                    a.s.repo, a.s.job_name, info && cfg_.send_urls ? info->url : ""});
    publish_job(msg::EventKind::kJobStarted, a.s);
    return Pick::kStart;
  });
}

// Running jobs nobody claimed after a restart are requeued; jobs whose runner never reports even
// though their timeout passed long ago end as timeout (a backstop; the runner enforces the
// timeout itself).
void Dispatcher::sweep_running() {
  const SteadyTime now = clock_.now();
  const int64_t wall = clock_.wall_ms();
  std::vector<uint64_t> orphans, overdue;
  for (uint64_t id : jobs_.running()) {
    const Active& a = jobs_.at(id);
    const int64_t limit_ms = (static_cast<int64_t>(a.timeout_s > 0 ? a.timeout_s : cfg_.job_timeout_s) + 60) * 1000;
    if (a.orphaned && now - a.orphan_since >= 3 * hb_) orphans.push_back(id);
    else if (!a.orphaned && a.s.started_at_ms > 0 && wall - a.s.started_at_ms > limit_ms) overdue.push_back(id);
  }
  for (uint64_t id : orphans) requeue(id, "its runner did not come back after the restart");
  for (uint64_t id : overdue) {
    const msg::JobSummary s = jobs_.at(id).s;
    if (const Runner* r = runners_.find(s.runner)) {
      send_later(r->peer, msg::CancelJob{id, std::max<uint32_t>(1, s.attempt)});
    }
    finish(id, Ending{JobStatus::kTimeout, -1, s.started_at_ms, wall, false,
                      "simpleci: no result within the job timeout plus 60 s\n"});
  }
}

size_t Dispatcher::prune(uint32_t days, size_t limit) {
  const int64_t cutoff = clock_.wall_ms() - static_cast<int64_t>(days) * 24 * 3600 * 1000;
  std::vector<PrunedJob> pruned;
  std::string err;
  if (!store_ok(store_.begin(&err), err) || !store_ok(store_.prune(cutoff, limit, &pruned, &err), err)) {
    return 0;
  }
  for (const PrunedJob& p : pruned) {
    if (p.owns_files) files_.remove(result_name(p.repo, p.commit, p.job_name), p.job_id);
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

}  // namespace simpleci::dispatcher
