// METRICS_REQUEST and JOBS_REQUEST.
#include "dispatcher/dispatcher.h"

namespace simpleci::dispatcher {

void Dispatcher::on_metrics(std::string_view peer, const msg::MetricsRequest& q) {
  send_later(peer, msg::Error{q.request_id, msg::ErrorCode::kBadRequest, "no metrics yet"});
}

void Dispatcher::on_jobs(std::string_view peer, const msg::JobsRequest& q) {
  send_later(peer, msg::Error{q.request_id, msg::ErrorCode::kBadRequest, "no jobs query yet"});
}

}  // namespace simpleci::dispatcher
