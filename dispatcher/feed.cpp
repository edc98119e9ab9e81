// The event feed: SUBSCRIBE, UNSUBSCRIBE and the events of state changes (PROTOCOL.md "Events").
// Feed messages leave with the round that made them, after its commit, like JOB; who gets each
// one, and who is dropped for it, is Subscribers' business (subscribers.h).
#include <algorithm>

#include <spdlog/spdlog.h>

#include "dispatcher/dispatcher.h"

namespace simpleci::dispatcher {

using msg::EventKind;

namespace {
// JOB_OUTPUT's fields around its bytes take at most this much (array, type, four integers, the
// bin header): a chunk is measured as its data plus this, never encoded just to be measured.
constexpr size_t kOutputOverhead = 64;
}  // namespace

void Dispatcher::on_subscribe(std::string_view peer, const msg::Subscribe& s) {
  if (feed_.subscribe(peer, s.follow, s.all_output, clock_.now()) == Subscribers::Subscribed::kFull) {
    send_later(peer, msg::Error{s.request_id, msg::ErrorCode::kBusy, "too many subscribers"});
    return;
  }
  msg::Snapshot snap = snapshot(s.request_id);
  // Refused by no budget (the peer asked for it), but the events behind it are held to it.
  feed_.charge(peer, msg::encode(snap).size());
  send_later(peer, std::move(snap));
}

void Dispatcher::on_unsubscribe(std::string_view peer, const msg::Unsubscribe& u) {
  const bool was = feed_.remove(peer);
  send_later(peer, msg::Ok{u.request_id, 0, was ? "unsubscribed" : "not subscribed"});
}

msg::Snapshot Dispatcher::snapshot(uint64_t request_id) const {
  msg::Snapshot s;
  s.request_id = request_id;
  s.feed = feed_.feed();
  s.seq = feed_.seq();
  s.runners = runner_infos();
  s.queue_length = jobs_.queued();
  s.queued = jobs_.first_queued(msg::kMaxListLen);
  s.running = running_jobs();
  return s;
}

void Dispatcher::publish_job(EventKind kind, uint64_t job_id, const std::string& released_by) {
  if (feed_.empty()) return;
  if (const Active* a = jobs_.find(job_id)) publish_job(kind, a->s, released_by);
}

void Dispatcher::publish_job(EventKind kind, const msg::JobSummary& s, const std::string& released_by) {
  if (feed_.empty()) return;
  msg::Event e = event(kind);
  msg::JobSummary& j = e.jobs.emplace_back(s);
  if (kind == EventKind::kJobStarted) {
    // dispatch() publishes from walk_queue's visitor: the job leaves the queue once it returns.
    j.status = msg::JobStatus::kRunning;
    e.queue_length -= std::min<uint64_t>(e.queue_length, 1);
    if (const Runner* r = runners_.find(j.runner)) e.runners.push_back(runner_info(*r));
  } else if (kind == EventKind::kJobRequeued) {
    ++j.attempt;  // the attempt to come
  }
  publish(std::move(e));
  if (!released_by.empty()) publish_runner(EventKind::kRunnerChanged, released_by);
}

void Dispatcher::publish_runner(EventKind kind, const std::string& name) {
  if (feed_.empty()) return;
  const Runner* r = runners_.find(name);
  if (!r) return;
  msg::Event e = event(kind);
  e.runners.push_back(runner_info(*r));
  publish(std::move(e));
}

void Dispatcher::publish_output(const msg::Output& o) {
  if (feed_.empty()) return;
  const Subscribers::Fanout f = feed_.output(o.job_id, o.data.size() + kOutputOverhead);
  if (f.to.empty() && f.dropped.empty()) return;
  feed_out(f, msg::JobOutput{feed_.feed(), o.job_id, o.attempt, o.offset, o.data});
}

// An event of the feed as it is now: seq is the newest (publish() numbers a new one).
msg::Event Dispatcher::event(EventKind kind) const {
  msg::Event e;
  e.feed = feed_.feed();
  e.seq = feed_.seq();
  e.kind = static_cast<uint32_t>(kind);
  e.at_ms = clock_.wall_ms();
  e.queue_length = jobs_.queued();
  return e;
}

void Dispatcher::publish(msg::Event e) {
  e.seq = feed_.next_seq();
  feed_out(feed_.event(msg::encode(e).size()), e);
}

// The message to those it fits; an EVENT dropped (outside the budget, repeating the newest seq)
// to those it did not, which Subscribers has forgotten already.
void Dispatcher::feed_out(const Subscribers::Fanout& f, const msg::Message& m) {
  for (const auto& peer : f.to) send_later(peer, m);
  if (f.dropped.empty()) return;
  counters_["feed.dropped"] += f.dropped.size();
  uint64_t held = 0;
  if (feed_log_.allow(clock_.now(), &held)) {
    spdlog::info("{} subscriber(s) dropped from the event feed: {} MiB unread{}", f.dropped.size(),
                 msg::kFeedBudgetBytes >> 20, LogLimiter::held_back(held));
  }
  const msg::Event dropped = event(EventKind::kDropped);
  for (const auto& peer : f.dropped) send_later(peer, dropped);
}

void Dispatcher::feed_tick() {
  const SteadyTime now = clock_.now();
  const SteadyTime since = std::exchange(feed_ticked_, now);
  if (feed_.empty()) return;
  // A pause after setup failures ends with time, not with a message.
  for (const auto& [name, r] : runners_.all()) {
    if (r.paused_until > since && r.paused_until <= now) publish_runner(EventKind::kRunnerChanged, name);
  }
  if (!feed_.keepalive_due(now)) return;
  const msg::Event k = event(EventKind::kKeepalive);
  feed_out(feed_.event(msg::encode(k).size()), k);
}

void Dispatcher::feed_sent() {
  feed_.round_sent();
  for (const auto& peer : round_.take_unsent_feed()) {
    if (feed_.remove(peer)) ++counters_["feed.gone"];
  }
}

}  // namespace simpleci::dispatcher
