// ObserverSet: the observers a NOTIFY wakes. It answers "who said OBSERVER_HELLO lately".
//
// It owns the routing id of every observer heard from within kObserverExpiryMs and when it was
// last heard. An observer that reconnects comes back under a new routing id and never says
// goodbye under the old one, so entries expire rather than wait to be removed; and the set is
// bounded (kMaxObservers: a newcomer pushes out the one heard from longest ago), so peers saying
// hello under ever new ids cannot grow it.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"

namespace simpleci::dispatcher {

class ObserverSet {
 public:
  void hello(std::string_view peer, SteadyTime now);
  // The observers heard from within the expiry (the others are forgotten now).
  std::vector<std::string> current(SteadyTime now);
  size_t size() const { return seen_.size(); }

 private:
  std::map<std::string, SteadyTime, std::less<>> seen_;  // routing id -> last OBSERVER_HELLO
};

}  // namespace simpleci::dispatcher
