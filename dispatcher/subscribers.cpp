#include "dispatcher/subscribers.h"

#include <random>
#include <utility>

namespace simpleci::dispatcher {

Subscribers::Subscribers(uint64_t feed_id, InFlight in_flight, size_t budget, size_t max_subscribers)
    : feed_(feed_id), in_flight_(std::move(in_flight)), budget_(budget), max_(max_subscribers) {}

Subscribers::Subscribed Subscribers::subscribe(std::string_view peer,
                                               const std::vector<uint64_t>& follow,
                                               bool all_output, SteadyTime now) {
  auto it = subs_.find(peer);
  const bool renewed = it != subs_.end();
  if (!renewed) {
    if (subs_.size() >= max_) return Subscribed::kFull;
    if (subs_.empty()) next_keepalive_ = now + Millis(msg::kFeedKeepaliveMs);
    it = subs_.emplace(std::string(peer), Subscriber{}).first;
  }
  it->second.follow = std::set<uint64_t>(follow.begin(), follow.end());
  it->second.all_output = all_output;
  return renewed ? Subscribed::kRenewed : Subscribed::kNew;
}

bool Subscribers::remove(std::string_view peer) {
  auto it = subs_.find(peer);
  if (it == subs_.end()) return false;
  subs_.erase(it);
  return true;
}

Subscribers::Fanout Subscribers::event(size_t bytes) {
  return fan_out(bytes, [](const Subscriber&) { return true; });
}

Subscribers::Fanout Subscribers::output(uint64_t job_id, size_t bytes) {
  return fan_out(bytes, [job_id](const Subscriber& s) { return s.all_output || s.follow.contains(job_id); });
}

Subscribers::Fanout Subscribers::fan_out(size_t bytes, const std::function<bool(const Subscriber&)>& wants) {
  Fanout f;
  for (auto it = subs_.begin(); it != subs_.end();) {
    Subscriber& s = it->second;
    if (!wants(s)) {
      ++it;
    } else if (in_flight_(it->first) + s.round_bytes + bytes > budget_) {
      f.dropped.push_back(it->first);
      it = subs_.erase(it);
    } else {
      s.round_bytes += bytes;
      f.to.push_back(it->first);
      ++it;
    }
  }
  return f;
}

void Subscribers::charge(std::string_view peer, size_t bytes) {
  if (auto it = subs_.find(peer); it != subs_.end()) it->second.round_bytes += bytes;
}

void Subscribers::round_sent() {
  for (auto& [peer, s] : subs_) s.round_bytes = 0;
}

bool Subscribers::keepalive_due(SteadyTime now) {
  if (subs_.empty() || now < next_keepalive_) return false;
  next_keepalive_ = now + Millis(msg::kFeedKeepaliveMs);
  return true;
}

uint64_t random_feed_id() {
  std::random_device rd;
  const uint64_t id = ((uint64_t{rd()} << 32) | rd()) & ((uint64_t{1} << 53) - 1);
  return id == 0 ? 1 : id;
}

}  // namespace simpleci::dispatcher
