// The event feed: SUBSCRIBE, UNSUBSCRIBE and the events of state changes (PROTOCOL.md "Events").
// Feed messages leave with the round that made them, after its commit, like JOB; who gets each
// one, and who is dropped for it, is Subscribers' business (subscribers.h). A round's events go
// to each subscriber as one message, encoded once and shared by every subscriber that gets the
// same ones: the cost of the feed grows with rounds and subscribers, not with events times
// subscribers.
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
  // SUBSCRIBEs faster than their snapshots are read would make the round hold any number of
  // them: past the budget the peer is told to read first (nothing changes for it).
  if (feed_.held(peer) >= feed_.budget()) {
    send_later(peer, msg::Error{s.request_id, msg::ErrorCode::kBusy, msg::kBusyText});
    return;
  }
  if (feed_.subscribe(peer, s.follow, s.all_output, clock_.now()) == Subscribers::Subscribed::kFull) {
    send_later(peer, msg::Error{s.request_id, msg::ErrorCode::kBusy, "too many subscribers"});
    return;
  }
  round_events_.to.erase(std::string(peer));  // the snapshot covers this round's events so far
  msg::Snapshot snap = snapshot(s.request_id);
  // Refused by no budget (the peer asked for it), but the events behind it are held to it.
  feed_.charge(peer, msg::encode(snap).size());
  send_later(peer, std::move(snap));
}

void Dispatcher::on_unsubscribe(std::string_view peer, const msg::Unsubscribe& u) {
  const bool was = feed_.remove(peer);
  round_events_.to.erase(std::string(peer));
  send_later(peer, msg::Ok{u.request_id, 0, was ? "unsubscribed" : "not subscribed"});
}

msg::Snapshot Dispatcher::snapshot(uint64_t request_id) const {
  msg::Snapshot s;
  s.request_id = request_id;
  s.feed = feed_.feed();
  s.seq = feed_.seq();
  s.runners = runner_infos();
  s.queue_length = jobs_.queued();
  s.queued = queued_jobs(false, {});
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
  drop_subscribers(f);
  if (f.to.empty()) return;
  SharedBody b{std::make_shared<const std::string>(
                   msg::encode(msg::JobOutput{feed_.feed(), o.job_id, o.attempt, o.offset, o.data})),
               msg::MessageType::kJobOutput};
  for (const auto& peer : f.to) round_.send_shared_later(peer, b);
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
  queue_event(std::move(e));
}

// Charged to each subscriber now, sent at the round's end with the round's other events.
void Dispatcher::queue_event(msg::Event e) {
  const Subscribers::Fanout f = feed_.event(msg::encoded_size_bound(e));
  drop_subscribers(f);
  if (f.to.empty()) return;
  const auto index = static_cast<uint32_t>(round_events_.events.size());
  round_events_.events.push_back(std::move(e));
  for (const auto& peer : f.to) round_events_.to[peer].push_back(index);
}

// An EVENT dropped (outside the budget, repeating the newest seq) to each subscriber that a
// message did not fit, which Subscribers has forgotten already; its unsent events of the round
// go too (it subscribes again and starts from a snapshot).
void Dispatcher::drop_subscribers(const Subscribers::Fanout& f) {
  if (f.dropped.empty()) return;
  counters_["feed.dropped"] += f.dropped.size();
  uint64_t held = 0;
  if (feed_log_.allow(clock_.now(), &held)) {
    spdlog::info("{} subscriber(s) dropped from the event feed: {} MiB unread{}", f.dropped.size(),
                 msg::kFeedBudgetBytes >> 20, LogLimiter::held_back(held));
  }
  const msg::Event dropped = event(EventKind::kDropped);
  for (const auto& peer : f.dropped) {
    round_events_.to.erase(peer);
    send_later(peer, dropped);
  }
}

void Dispatcher::send_round_events() {
  if (round_events_.events.empty()) return;
  const RoundEvents r = std::exchange(round_events_, {});
  // Encoded once per distinct list of events (nearly always one: every subscriber got them all).
  std::vector<std::pair<const std::vector<uint32_t>*, std::vector<SharedBody>>> encoded;
  auto bodies_of = [&](const std::vector<uint32_t>& list) -> const std::vector<SharedBody>& {
    for (const auto& [l, b] : encoded) {
      if (*l == list) return b;
    }
    std::vector<SharedBody> bodies;
    for (size_t at = 0; at < list.size(); at += msg::kMaxListLen) {
      const size_t n = std::min(msg::kMaxListLen, list.size() - at);
      if (n == 1) {
        bodies.push_back({std::make_shared<const std::string>(msg::encode(r.events[list[at]])),
                          msg::MessageType::kEvent});
        continue;
      }
      msg::Events batch;
      batch.events.reserve(n);
      for (size_t i = at; i < at + n; ++i) batch.events.push_back(r.events[list[i]]);
      bodies.push_back({std::make_shared<const std::string>(msg::encode(batch)), msg::MessageType::kEvents});
    }
    return encoded.emplace_back(&list, std::move(bodies)).second;
  };
  for (const auto& [peer, list] : r.to) {
    for (const SharedBody& b : bodies_of(list)) round_.send_shared_later(peer, b);
  }
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
  queue_event(event(EventKind::kKeepalive));
}

void Dispatcher::feed_sent() {
  feed_.round_sent();
  for (const auto& peer : round_.take_unsent_feed()) {
    if (feed_.remove(peer)) ++counters_["feed.gone"];
  }
}

}  // namespace simpleci::dispatcher
