// COMMIT and the client requests (STATUS, RESULTS, CANCEL, RETRY, PRUNE, WATCH): the part of the
// Dispatcher that answers people and scripts rather than runners. A store that cannot be read
// is never taken for one that holds nothing: the requester gets ERROR storage_failure.
#include <algorithm>

#include <spdlog/spdlog.h>

#include "dispatcher/dispatcher.h"

namespace simpleci::dispatcher {

using msg::JobStatus;

namespace {
// A job to queue (its id and times are the store's).
msg::JobSummary new_job(const std::string& repo, const std::string& commit, const std::string& branch,
                        const std::string& name, const std::vector<std::string>& labels) {
  msg::JobSummary s;
  s.repo = repo;
  s.commit = commit;
  s.branch = branch;
  s.job_name = name;
  s.labels = labels;
  return s;
}
}  // namespace

void Dispatcher::storage_failure(std::string_view peer, uint64_t request_id, const std::string& err) {
  ++counters_["store.failures"];
  uint64_t held = 0;
  if (store_log_.allow(clock_.now(), &held)) {
    spdlog::error("cannot read the store: {}{}", err, LogLimiter::held_back(held));
  }
  send_later(peer, msg::Error{request_id, msg::ErrorCode::kStorageFailure,
                              "the dispatcher cannot read its store; retry later"});
}

bool Dispatcher::read_inactive(std::string_view peer, uint64_t request_id, uint64_t job_id,
                               JobRow* row) {
  std::string err;
  switch (store_.job(job_id, row, &err)) {
    case Lookup::kFound:
      return true;
    case Lookup::kNotFound:
      send_later(peer, msg::Error{request_id, msg::ErrorCode::kNotFound, "no job " + std::to_string(job_id)});
      return false;
    case Lookup::kError:
      break;
  }
  storage_failure(peer, request_id, err);
  return false;
}

// A commit of a repository becomes one job per JobSpec (.simpleci/jobs/NAME), or one unnamed
// job without any. A spec whose settings line is wrong is stored as a final error whose output
// says why, so its author sees it like any result. ACCEPTED names the first job.
void Dispatcher::on_commit(std::string_view peer, const msg::Commit& c) {
  if (!c.repo.empty() && !repo_info(c.repo)) {
    send_later(peer, msg::Error{c.request_id, msg::ErrorCode::kBadRequest,
                                "repository " + c.repo + " is not declared on this dispatcher (--repo " +
                                    c.repo + "=URL)"});
    return;
  }
  if (const uint64_t id = jobs_.by_commit(c.commit, c.repo)) {
    send_later(peer, msg::Accepted{c.request_id, id, true});
    return;
  }
  if (!c.force) {
    std::string err;
    JobRow latest;
    const Lookup l = store_.latest_for_commit(c.repo, c.commit, &latest, &err);
    if (l == Lookup::kError) {  // not knowing whether the commit has a job must not queue it again
      storage_failure(peer, c.request_id, err);
      return;
    }
    if (l == Lookup::kFound) {
      send_later(peer, msg::Accepted{c.request_id, latest.summary.job_id, true});
      return;
    }
  }
  if (refuse_if_full(peer, c.request_id)) return;
  std::vector<msg::JobSpec> specs = c.jobs;
  if (specs.empty()) specs.emplace_back();  // the unnamed job
  uint64_t first = 0;
  for (const msg::JobSpec& spec : specs) {
    const uint64_t id = enqueue(new_job(c.repo, c.commit, c.branch, spec.name, spec.labels), spec.timeout_s);
    if (id == 0) {
      send_later(peer, msg::Error{c.request_id, msg::ErrorCode::kStorageFailure, "cannot store the job"});
      return;
    }
    if (first == 0) first = id;
    ++activity_.queued;
    spdlog::debug("job {} queued: {}{}{} ({})", id, c.repo.empty() ? "" : c.repo + " ", c.commit,
                  spec.name.empty() ? "" : " " + spec.name, c.branch.empty() ? "no branch" : c.branch);
    if (!spec.problem.empty()) {
      finish(id, Ending{JobStatus::kError, -1, 0, clock_.wall_ms(), false, spec.problem + "\n"});
    }
  }
  send_later(peer, msg::Accepted{c.request_id, first, false});
}

// A new job past --max-queued is refused: a flood of commits cannot grow the queue, the store
// and the runners' work without bound. Jobs that are requeued (runner lost) are not counted
// against the limit: they were admitted already.
bool Dispatcher::refuse_if_full(std::string_view peer, uint64_t request_id) {
  const size_t queued = jobs_.queued();
  if (queued < cfg_.max_queued) return false;
  ++counters_["jobs.refused_queue_full"];
  uint64_t held = 0;
  if (full_log_.allow(clock_.now(), &held)) {
    spdlog::warn("queue full ({} jobs queued, --max-queued {}): a new job was refused{}", queued,
                 cfg_.max_queued, LogLimiter::held_back(held));
  }
  send_later(peer, msg::Error{request_id, msg::ErrorCode::kQueueFull,
                              std::to_string(queued) + " jobs queued, the limit is " +
                                  std::to_string(cfg_.max_queued)});
  return true;
}

msg::RunnerInfo Dispatcher::runner_info(const Runner& r) const {
  msg::RunnerInfo info;
  info.name = r.name;
  info.state = runner_state(r, clock_.now());
  info.capacity = r.capacity;
  for (uint64_t id : r.jobs) {
    if (info.jobs.size() < msg::kMaxListLen) info.jobs.push_back(id);
  }
  info.last_seen_ms = r.last_seen_wall;
  return info;
}

std::vector<msg::RunnerInfo> Dispatcher::runner_infos() const {
  std::vector<msg::RunnerInfo> out;
  for (const auto& [name, r] : runners_.all()) {
    if (out.size() >= msg::kMaxListLen) break;
    out.push_back(runner_info(r));
  }
  return out;
}

std::vector<msg::JobSummary> Dispatcher::running_jobs() const {
  std::vector<msg::JobSummary> out;
  for (uint64_t id : jobs_.running()) {  // lowest ids first, as many as a list holds
    if (out.size() >= msg::kMaxListLen) break;
    out.push_back(jobs_.at(id).s);
  }
  return out;
}

void Dispatcher::on_status(std::string_view peer, const msg::StatusRequest& q) {
  msg::StatusReply rep;
  rep.request_id = q.request_id;
  rep.runners = runner_infos();
  rep.queue_length = jobs_.queued();
  rep.running = running_jobs();
  if (q.by_repo) std::erase_if(rep.running, [&](const msg::JobSummary& s) { return s.repo != q.repo; });
  rep.counters = counters();
  rep.queued = queued_jobs(q.by_repo, q.repo);
  send_later(peer, std::move(rep));
}

void Dispatcher::on_results(std::string_view peer, const msg::ResultsRequest& q) {
  msg::ResultsReply rep;
  rep.request_id = q.request_id;
  std::string err;
  if (!store_.recent(q.commit, q.limit, q.by_repo, q.repo, &rep.jobs, &err)) {
    storage_failure(peer, q.request_id, err);
    return;
  }
  if (q.with_output && !q.commit.empty() && !rep.jobs.empty() && msg::is_final(rep.jobs[0].status)) {
    if (output_busy(peer, q.request_id)) return;
    if (!store_.output(rep.jobs[0].job_id, &rep.output, &err)) {
      storage_failure(peer, q.request_id, err);
      return;
    }
  }
  send_later(peer, std::move(rep));
}

void Dispatcher::on_cancel(std::string_view peer, const msg::CancelRequest& q) {
  const Active* a = jobs_.find(q.job_id);
  if (!a) {
    JobRow row;
    if (read_inactive(peer, q.request_id, q.job_id, &row)) {
      send_later(peer, msg::Error{q.request_id, msg::ErrorCode::kInvalidState,
                                  "job " + std::to_string(q.job_id) + " already ended as " +
                                      std::string(msg::to_string(row.summary.status))});
    }
    return;
  }
  const msg::JobSummary s = a->s;
  if (s.status == JobStatus::kRunning) {
    if (const Runner* r = runners_.find(s.runner)) {
      send_later(r->peer, msg::CancelJob{s.job_id, std::max<uint32_t>(1, s.attempt)});
    }
  }
  finish(s.job_id, Ending{JobStatus::kCancelled, -1, s.started_at_ms, clock_.wall_ms(), false,
                          "simpleci: job cancelled by request\n"});
  spdlog::info("job {} cancelled", s.job_id);
  send_later(peer, msg::Ok{q.request_id, s.job_id, "cancelled job " + std::to_string(s.job_id)});
}

void Dispatcher::on_retry(std::string_view peer, const msg::RetryRequest& q) {
  if (const Active* a = jobs_.find(q.job_id)) {
    send_later(peer, msg::Error{q.request_id, msg::ErrorCode::kInvalidState,
                                "job " + std::to_string(q.job_id) + " is still " +
                                    std::string(msg::to_string(a->s.status))});
    return;
  }
  JobRow row;
  if (!read_inactive(peer, q.request_id, q.job_id, &row)) return;
  const msg::JobSummary& old = row.summary;
  if (!old.repo.empty() && !repo_info(old.repo)) {
    send_later(peer, msg::Error{q.request_id, msg::ErrorCode::kInvalidState,
                                "repository " + old.repo + " is no longer declared"});
    return;
  }
  // Another active job of the same commit and job name is the retry already.
  uint64_t id = 0;
  for (uint64_t other : jobs_.ids_of_commit(old.commit, old.repo)) {
    const Active* a = jobs_.find(other);
    if (a && a->s.job_name == old.job_name) id = other;
  }
  if (id == 0) {
    if (refuse_if_full(peer, q.request_id)) return;
    id = enqueue(new_job(old.repo, old.commit, old.branch, old.job_name, old.labels), row.timeout_s);
  }
  if (id == 0) {
    send_later(peer, msg::Error{q.request_id, msg::ErrorCode::kStorageFailure, "cannot store the job"});
    return;
  }
  send_later(peer, msg::Ok{q.request_id, id, "queued job " + std::to_string(id)});
}

// An admin action (under CURVE it must be limited to admin keys). One request prunes a bounded
// batch; the client asks again while a reply reaches kMaxPrunePerRequest. A store failure turns
// the OK into ERROR storage_failure at flush().
void Dispatcher::on_prune(std::string_view peer, const msg::PruneRequest& q) {
  const size_t n = prune(q.older_than_days, msg::kMaxPrunePerRequest);
  spdlog::info("prune request: {} job(s) finished more than {} days ago pruned", n, q.older_than_days);
  send_later(peer, msg::Ok{q.request_id, n, "pruned " + std::to_string(n) + " job(s)"});
}

namespace {
// What a WATCH reply says of a job; a watcher of another attempt starts again from byte 0.
void describe(const msg::JobSummary& s, const msg::WatchRequest& q, msg::WatchReply* rep) {
  rep->attempt = s.attempt;
  rep->status = s.status;
  rep->exit_code = s.exit_code;
  rep->duration_ms = s.duration_ms;
  rep->runner = s.runner;
  rep->offset = q.attempt == s.attempt ? q.offset : 0;
}
}  // namespace

// A running job's bytes come from its live window; a finished job's from its stored output.
// Within the output cap the stored output is the bytes the runner streamed, so a watcher's offset
// stays valid across the end of the job; past the cap the stored output keeps only the head and
// the tail, and a watcher beyond its end is answered at the end, complete (PROTOCOL.md).
void Dispatcher::on_watch(std::string_view peer, const msg::WatchRequest& q) {
  if (output_busy(peer, q.request_id)) return;
  msg::WatchReply rep;
  rep.request_id = q.request_id;
  rep.job_id = q.job_id;
  if (const Active* a = jobs_.find(q.job_id)) {
    describe(a->s, q, &rep);
    if (a->s.status == JobStatus::kRunning) {
      live_.read(q.job_id, rep.attempt, &rep.offset, msg::kMaxWatchBytes, &rep.data);
    }
    send_later(peer, std::move(rep));
    return;
  }
  JobRow row;
  if (!read_inactive(peer, q.request_id, q.job_id, &row)) return;
  describe(row.summary, q, &rep);
  uint64_t total = 0;
  std::string err;
  if (!store_.read_output(q.job_id, rep.offset, msg::kMaxWatchBytes, &rep.data, &total, &err)) {
    storage_failure(peer, q.request_id, err);
    return;
  }
  rep.offset = std::min(rep.offset, total);
  rep.complete = rep.offset + rep.data.size() >= total;
  send_later(peer, std::move(rep));
}

// One output-carrying reply per peer at a time: a client asking for outputs and not reading
// them would otherwise make the dispatcher read and hold 16 MiB per request.
bool Dispatcher::output_busy(std::string_view peer, uint64_t request_id) {
  if (!round_.output_pending(peer) && !out_.output_in_flight(peer)) return false;
  ++counters_["send.over_budget"];
  send_later(peer, msg::Error{request_id, msg::ErrorCode::kBusy, msg::kBusyText});
  return true;
}

}  // namespace simpleci::dispatcher
