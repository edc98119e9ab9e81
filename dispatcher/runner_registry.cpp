#include "dispatcher/runner_registry.h"

#include <iterator>

namespace simpleci::dispatcher {

const char* runner_state(const Runner& r, SteadyTime now) {
  if (r.draining) return "draining";
  if (now < r.paused_until) return "paused";
  return r.jobs.empty() ? "idle" : "busy";
}

Runner* RunnerRegistry::session(std::string_view peer) {
  auto it = peers_.find(std::string(peer));
  return it == peers_.end() ? nullptr : find(it->second);
}

Runner* RunnerRegistry::find(std::string_view name) {
  auto r = runners_.find(name);
  return r == runners_.end() ? nullptr : &r->second;
}

std::optional<std::string> RunnerRegistry::name_on_fd(int fd) const {
  for (const auto& [name, r] : runners_) {
    if (r.fd == fd) return name;
  }
  return std::nullopt;
}

Runner& RunnerRegistry::add(const std::string& name, std::string_view peer, int fd,
                            uint32_t capacity, SteadyTime now, int64_t wall_ms,
                            std::set<uint64_t>* previous) {
  previous->clear();
  if (auto it = runners_.find(name); it != runners_.end()) {
    *previous = std::move(it->second.jobs);
    if (it->second.peer != peer) peers_.erase(it->second.peer);
    runners_.erase(it);
  }
  Runner& r = runners_[name];
  r.name = name;
  r.peer = std::string(peer);
  r.fd = fd;
  r.capacity = capacity;
  r.last_seen = r.last_sent = now;
  r.last_seen_wall = wall_ms;
  peers_[r.peer] = name;
  return r;
}

bool RunnerRegistry::remove(const std::string& name, std::set<uint64_t>* jobs) {
  auto it = runners_.find(name);
  if (it == runners_.end()) return false;
  *jobs = std::move(it->second.jobs);
  peers_.erase(it->second.peer);
  runners_.erase(it);
  return true;
}

void RunnerRegistry::release(const std::string& name, uint64_t job_id) {
  if (Runner* r = find(name)) r->jobs.erase(job_id);
}

void RunnerRegistry::clear_jobs() {
  for (auto& [name, r] : runners_) r.jobs.clear();
}

bool can_take(const Runner& r, const Needs& n) {
  if (n.repo.empty() ? !r.serves_unnamed : !r.serves_all) return false;
  for (const std::string& l : n.labels) {
    if (!r.labels.count(l)) return false;
  }
  return true;
}

bool RunnerRegistry::any_free(SteadyTime now) const {
  for (const auto& [name, r] : runners_) {
    if (!r.draining && now >= r.paused_until && r.jobs.size() < r.capacity) return true;
  }
  return false;
}

Runner* RunnerRegistry::pick(const Needs& needs, const std::set<std::string>& avoid, SteadyTime now) {
  Runner* best = nullptr;
  Runner* fallback = nullptr;
  bool others = false;
  const size_t n = runners_.size();
  auto it = runners_.begin();
  std::advance(it, n ? rr_ % n : 0);
  for (size_t i = 0; i < n; ++i, ++it) {
    if (it == runners_.end()) it = runners_.begin();
    Runner& r = it->second;
    if (r.draining || now < r.paused_until || !can_take(r, needs)) continue;
    const bool avoided = avoid.count(r.name) > 0;
    others |= !avoided;
    if (r.jobs.size() >= r.capacity) continue;
    Runner*& pick = avoided ? fallback : best;
    if (!pick || r.jobs.size() < pick->jobs.size()) pick = &r;
  }
  return best ? best : (others ? nullptr : fallback);
}

}  // namespace simpleci::dispatcher
