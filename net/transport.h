// ZeroMQ plumbing shared by every component: socket options, and sending / receiving whole
// simpleCI messages. cppzmq throws; these helpers turn transport errors into return values so a
// bad peer never ends a loop.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <zmq.hpp>

#include "messages/codec.h"

namespace simpleci::net {

// Options every simpleCI socket gets: ZMQ_MAXMSGSIZE = msg::kMaxFrameBytes (larger frames are
// dropped by libzmq before we see them, and the connection is closed), LINGER 0 so shutdown
// never hangs on a dead peer, and TCP keepalive.
void configure_common(zmq::socket_t& s);

// A ROUTER for the dispatcher: common options plus ZMQ_ROUTER_MANDATORY, so a send to a
// vanished peer fails (send_to returns false) instead of vanishing silently.
zmq::socket_t make_router(zmq::context_t& ctx);

// A DEALER connected to endpoint, common options set, with reconnect interval 100 ms.
zmq::socket_t make_dealer(zmq::context_t& ctx, const std::string& endpoint);

// DEALER side: sends [header, body]. Never blocks: false when the message cannot be queued now.
bool send(zmq::socket_t& dealer, const msg::Message& m);
// The same with the body encoded already; `attached` is released once libzmq lets go of the
// frame (sent, dropped, or the send failed).
bool send_encoded(zmq::socket_t& dealer, std::string body, std::shared_ptr<void> attached);

// ROUTER side: sends [peer, header, body] with dontwait. False when the peer is unknown /
// gone or its queue is full.
bool send_to(zmq::socket_t& router, std::string_view peer, const msg::Message& m);

// ROUTER side: sends [peer, header, body] with an already encoded body, which libzmq takes
// over without a copy. `attached` is destroyed when libzmq releases the body (written to the
// kernel, or dropped), on libzmq's I/O thread, or at once when the send fails; a
// net::ReplyBudget charge there gives the bytes back.
bool send_encoded_to(zmq::socket_t& router, std::string_view peer, std::string body,
                     std::shared_ptr<void> attached);
// The same for a body that many peers are sent: libzmq reads these bytes in place and holds
// them (and `attached`) until it releases this peer's copy.
bool send_shared_to(zmq::socket_t& router, std::string_view peer,
                    std::shared_ptr<const std::string> body, std::shared_ptr<void> attached);

// One received multipart message. src_fd is the file descriptor of the connection it arrived
// on (ZMQ_SRCFD), or -1.
struct Received {
  std::vector<zmq::message_t> frames;
  int src_fd = -1;
};

// Receives every frame of the next message; nullopt when none is waiting (dontwait) or on error.
// Never reads more than max_frames frames into memory: extra frames are drained and dropped,
// and the result then has max_frames + 1 frames so the caller can reject it.
std::optional<Received> recv(zmq::socket_t& s, bool dontwait = true, size_t max_frames = 4);

// Decodes frames[first], frames[first+1] as header + body (frame count must be exactly
// first + 2).
msg::Decoded decode_frames(const Received& r, size_t first);

inline std::string_view view(const zmq::message_t& m) {
  return std::string_view(static_cast<const char*>(m.data()), m.size());
}

}  // namespace simpleci::net
