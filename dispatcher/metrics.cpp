// METRICS_REQUEST (counters, gauges, histograms) and JOBS_REQUEST (jobs by branch and status).
#include "dispatcher/metrics.h"

#include <algorithm>

#include "dispatcher/dispatcher.h"

namespace simpleci::dispatcher {

void Histogram::observe(int64_t ms) {
  ms = std::max<int64_t>(ms, 0);
  const auto at = std::lower_bound(kBoundsMs.begin(), kBoundsMs.end(), ms);
  if (at != kBoundsMs.end()) ++in_bucket_[static_cast<size_t>(at - kBoundsMs.begin())];
  ++count_;
  sum_ms_ += static_cast<uint64_t>(ms);
}

void Histogram::append_to(const std::string& name, std::vector<msg::Counter>* out) const {
  const std::string prefix = "hist." + name + ".";
  uint64_t below = 0;
  for (size_t i = 0; i < kBoundsMs.size(); ++i) {
    below += in_bucket_[i];
    out->push_back({prefix + "le." + std::to_string(kBoundsMs[i]), below});
  }
  out->push_back({prefix + "count", count_});
  out->push_back({prefix + "sum_ms", sum_ms_});
}

void Dispatcher::on_metrics(std::string_view peer, const msg::MetricsRequest& q) {
  msg::MetricsReply rep;
  rep.request_id = q.request_id;
  rep.metrics = counters(msg::kMaxMetrics / 2);
  rep.metrics.push_back({"gauge.queue_length", jobs_.queued()});
  rep.metrics.push_back({"gauge.running", jobs_.running().size()});
  std::map<std::string, uint64_t> by_state{{"idle", 0}, {"busy", 0}, {"draining", 0}, {"paused", 0}};
  const SteadyTime now = clock_.now();
  for (const auto& [name, r] : runners_.all()) ++by_state[runner_state(r, now)];
  for (const auto& [state, n] : by_state) rep.metrics.push_back({"gauge.runners." + state, n});
  rep.metrics.push_back({"gauge.subscribers", subscriber_count()});
  rep.metrics.push_back({"gauge.start_time_ms", static_cast<uint64_t>(started_wall_ms_)});
  duration_hist_.append_to("job_duration_ms", &rep.metrics);
  wait_hist_.append_to("queue_wait_ms", &rep.metrics);
  send_later(peer, std::move(rep));
}

void Dispatcher::on_jobs(std::string_view peer, const msg::JobsRequest& q) {
  msg::ResultsReply rep;
  rep.request_id = q.request_id;
  std::string err;
  if (!store_.jobs(JobFilter{q.branch, q.statuses, q.limit, q.before_job_id, q.by_repo, q.repo}, &rep.jobs, &err)) {
    storage_failure(peer, q.request_id, err);
    return;
  }
  send_later(peer, std::move(rep));
}

}  // namespace simpleci::dispatcher
