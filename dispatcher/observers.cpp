#include "dispatcher/observers.h"

#include <algorithm>

#include "messages/limits.h"

namespace simpleci::dispatcher {

void ObserverSet::hello(std::string_view peer, SteadyTime now) {
  auto it = seen_.find(peer);
  if (it != seen_.end()) {
    it->second = now;
    return;
  }
  if (seen_.size() >= msg::kMaxObservers) {
    seen_.erase(std::min_element(seen_.begin(), seen_.end(),
                                 [](const auto& a, const auto& b) { return a.second < b.second; }));
  }
  seen_.emplace(std::string(peer), now);
}

std::vector<std::string> ObserverSet::current(SteadyTime now) {
  std::erase_if(seen_, [&](const auto& e) { return now - e.second > Millis(msg::kObserverExpiryMs); });
  std::vector<std::string> out;
  out.reserve(seen_.size());
  for (const auto& [peer, when] : seen_) out.push_back(peer);
  return out;
}

}  // namespace simpleci::dispatcher
