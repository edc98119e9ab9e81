// One request to the dispatcher and the wait for its reply: what the `simpleci` client and the
// integration tests do for every STATUS, RESULTS, COMMIT, CANCEL, RETRY, PRUNE and WATCH.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

#include "messages/messages.h"
#include "net/dealer.h"

namespace simpleci::net {

// The request id a message carries (0 for the messages without one, such as REGISTER).
uint64_t request_id_of(const msg::Message& m);

// Sends req on conn and waits until `timeout` has passed for its reply: the first message that
// decodes and carries req's request id, or an ERROR with request id 0 (the dispatcher could not
// tie it to a request). Replies to earlier requests on the same connection that arrive late are
// skipped, so one connection can carry a series of requests with rising ids.
//
// ERROR busy for this request (the dispatcher still holds unread replies for the socket) is not
// returned: req is sent again after a pause (20 ms, doubling up to 500 ms) while the deadline
// allows, as PROTOCOL.md asks of a client.
//
// Returns the reply, an ERROR among them (callers branch on msg::Error), or nullopt when none
// came in time or req could not be queued. Blocks the calling thread; not for a poll loop.
std::optional<msg::Message> request(DealerConnection& conn, const msg::Message& req,
                                    std::chrono::milliseconds timeout);

}  // namespace simpleci::net
