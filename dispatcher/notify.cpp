// NOTIFY and OBSERVER_HELLO: a push reported by a hook wakes every observer at once, so a push is
// seen without waiting for the observers' next poll (polling stays as the fallback).
#include <spdlog/spdlog.h>

#include "dispatcher/dispatcher.h"

namespace simpleci::dispatcher {

// An observer that watches every declared repository (--cache) learns them in REPOS.
void Dispatcher::on_observer_hello(std::string_view peer, const msg::ObserverHello& h) {
  observers_.hello(peer, clock_.now());
  if (h.serves_all) send_later(peer, msg::Repos{repos_for_peers()});
}

// WAKE needs no flush (it promises nothing) and leaves with the round's other messages: a
// NOTIFY costs one small message per observer, and each observer bounds how often it polls.
void Dispatcher::on_notify(std::string_view peer, const msg::Notify& n) {
  const std::vector<std::string> observers = observers_.current(clock_.now());
  for (const auto& o : observers) send_later(o, msg::Wake{n.branches});
  counters_["observers.woken"] += observers.size();
  spdlog::debug("notify ({} branches): woke {} observer(s)", n.branches.size(), observers.size());
  send_later(peer, msg::Ok{n.request_id, observers.size(),
                           "woke " + std::to_string(observers.size()) + " observer(s)"});
}

}  // namespace simpleci::dispatcher
