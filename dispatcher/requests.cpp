// Client requests (STATUS, RESULTS, CANCEL, RETRY, WATCH): the part of the Dispatcher that answers
// people and scripts rather than runners.
#include <algorithm>

#include <spdlog/spdlog.h>

#include "dispatcher/dispatcher.h"

namespace simpleci::dispatcher {

using msg::JobStatus;

void Dispatcher::on_status(std::string_view peer, const msg::StatusRequest& q) {
  msg::StatusReply rep;
  rep.request_id = q.request_id;
  for (const auto& [name, r] : runners_) {
    if (rep.runners.size() >= msg::kMaxListLen) break;
    msg::RunnerInfo info;
    info.name = name;
    info.state = r.draining                          ? "draining"
                 : clock_.now() < r.paused_until ? "paused"
                 : r.jobs.empty()                ? "idle"
                                                 : "busy";
    info.capacity = r.capacity;
    for (uint64_t id : r.jobs) {
      if (info.jobs.size() < msg::kMaxListLen) info.jobs.push_back(id);
    }
    info.last_seen_ms = r.last_seen_wall;
    rep.runners.push_back(std::move(info));
  }
  rep.queue_length = queue_.size();
  for (uint64_t id : running_) {  // lowest ids first, as many as the reply holds
    if (rep.running.size() >= msg::kMaxListLen) break;
    rep.running.push_back(active_.at(id).s);
  }
  rep.counters = counters();
  send_later(peer, std::move(rep));
}

void Dispatcher::on_results(std::string_view peer, const msg::ResultsRequest& q) {
  msg::ResultsReply rep;
  rep.request_id = q.request_id;
  std::string err;
  if (!store_.recent(q.commit, q.limit, &rep.jobs, &err)) {
    send_later(peer, msg::Error{q.request_id, msg::ErrorCode::kStorageFailure, err});
    return;
  }
  if (q.with_output && !q.commit.empty() && !rep.jobs.empty() && msg::is_final(rep.jobs[0].status)) {
    if (output_busy(peer, q.request_id)) return;
    store_.output(rep.jobs[0].job_id, &rep.output, &err);
  }
  send_later(peer, std::move(rep));
}

void Dispatcher::on_cancel(std::string_view peer, const msg::CancelRequest& q) {
  auto it = active_.find(q.job_id);
  if (it == active_.end()) {
    std::string err;
    std::optional<JobRow> row;
    if (!store_.job(q.job_id, &row, &err)) {
      send_later(peer, msg::Error{q.request_id, msg::ErrorCode::kStorageFailure, err});
    } else if (!row) {
      send_later(peer, msg::Error{q.request_id, msg::ErrorCode::kNotFound,
                                  "no job " + std::to_string(q.job_id)});
    } else {
      send_later(peer, msg::Error{q.request_id, msg::ErrorCode::kInvalidState,
                                  "job " + std::to_string(q.job_id) + " already ended as " +
                                      std::string(msg::to_string(row->summary.status))});
    }
    return;
  }
  const msg::JobSummary s = it->second.s;
  if (s.status == JobStatus::kRunning) {
    if (auto r = runners_.find(s.runner); r != runners_.end()) {
      send_later(r->second.peer, msg::CancelJob{s.job_id, std::max<uint32_t>(1, s.attempt)});
    }
  }
  int64_t now = clock_.wall_ms();
  finish(s.job_id, JobStatus::kCancelled, -1, s.started_at_ms, now, false,
         "simpleci: job cancelled by request\n");
  spdlog::info("job {} cancelled", s.job_id);
  send_later(peer, msg::Ok{q.request_id, s.job_id, "cancelled job " + std::to_string(s.job_id)});
}

void Dispatcher::on_retry(std::string_view peer, const msg::RetryRequest& q) {
  if (auto it = active_.find(q.job_id); it != active_.end()) {
    send_later(peer, msg::Error{q.request_id, msg::ErrorCode::kInvalidState,
                                "job " + std::to_string(q.job_id) + " is still " +
                                    std::string(msg::to_string(it->second.s.status))});
    return;
  }
  std::string err;
  std::optional<JobRow> row;
  if (!store_.job(q.job_id, &row, &err)) {
    send_later(peer, msg::Error{q.request_id, msg::ErrorCode::kStorageFailure, err});
    return;
  }
  if (!row) {
    send_later(peer, msg::Error{q.request_id, msg::ErrorCode::kNotFound,
                                "no job " + std::to_string(q.job_id)});
    return;
  }
  const std::string& commit = row->summary.commit;
  uint64_t id;
  if (auto a = active_by_commit_.find(commit); a != active_by_commit_.end()) {
    id = a->second;
  } else {
    if (refuse_if_full(peer, q.request_id)) return;
    id = enqueue(commit, row->summary.branch);
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

// A running job's bytes come from its live window; a finished job's from its stored output,
// which begins with the same bytes the runner streamed (its head), so a watcher's offset stays
// valid across the end of the job.
void Dispatcher::on_watch(std::string_view peer, const msg::WatchRequest& q) {
  if (output_busy(peer, q.request_id)) return;
  msg::WatchReply rep;
  rep.request_id = q.request_id;
  rep.job_id = q.job_id;
  auto describe = [&](const msg::JobSummary& s) {
    rep.attempt = s.attempt;
    rep.status = s.status;
    rep.exit_code = s.exit_code;
    rep.duration_ms = s.duration_ms;
    rep.runner = s.runner;
    rep.offset = q.attempt == s.attempt ? q.offset : 0;  // another attempt starts from 0
  };
  if (auto it = active_.find(q.job_id); it != active_.end()) {
    describe(it->second.s);
    auto l = live_.find(q.job_id);
    if (it->second.s.status == JobStatus::kRunning && l != live_.end() &&
        l->second.attempt == rep.attempt) {
      const Live& live = l->second;
      rep.offset = std::clamp<uint64_t>(rep.offset, live.base, live.base + live.data.size());
      rep.data = live.data.substr(static_cast<size_t>(rep.offset - live.base), msg::kMaxWatchBytes);
    }
    send_later(peer, std::move(rep));
    return;
  }
  std::string err;
  std::optional<JobRow> row;
  if (!store_.job(q.job_id, &row, &err)) {
    send_later(peer, msg::Error{q.request_id, msg::ErrorCode::kStorageFailure, err});
    return;
  }
  if (!row) {
    send_later(peer, msg::Error{q.request_id, msg::ErrorCode::kNotFound, "no job " + std::to_string(q.job_id)});
    return;
  }
  describe(row->summary);
  uint64_t total = 0;
  if (!store_.output(q.job_id, &rep.data, &err, rep.offset, msg::kMaxWatchBytes, &total)) {
    send_later(peer, msg::Error{q.request_id, msg::ErrorCode::kStorageFailure, err});
    return;
  }
  rep.offset = std::min(rep.offset, total);
  rep.complete = rep.offset + rep.data.size() >= total;
  send_later(peer, std::move(rep));
}

}  // namespace simpleci::dispatcher
