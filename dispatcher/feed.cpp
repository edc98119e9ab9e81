// The event feed: SUBSCRIBE, UNSUBSCRIBE and the events of state changes (PROTOCOL.md "Events").
#include "dispatcher/dispatcher.h"

namespace simpleci::dispatcher {

void Dispatcher::on_subscribe(std::string_view peer, const msg::Subscribe& s) {
  send_later(peer, msg::Error{s.request_id, msg::ErrorCode::kBadRequest, "no event feed yet"});
}

void Dispatcher::on_unsubscribe(std::string_view peer, const msg::Unsubscribe& u) {
  send_later(peer, msg::Error{u.request_id, msg::ErrorCode::kBadRequest, "no event feed yet"});
}

}  // namespace simpleci::dispatcher
