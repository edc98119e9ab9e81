#include "net/transport.h"

namespace simpleci::net {

void configure_common(zmq::socket_t& s) {
  s.set(zmq::sockopt::maxmsgsize, msg::kMaxFrameBytes);
  s.set(zmq::sockopt::linger, 0);
  s.set(zmq::sockopt::tcp_keepalive, 1);
  s.set(zmq::sockopt::sndhwm, 100000);
  s.set(zmq::sockopt::rcvhwm, 100000);
}

zmq::socket_t make_router(zmq::context_t& ctx) {
  zmq::socket_t s(ctx, zmq::socket_type::router);
  configure_common(s);
  s.set(zmq::sockopt::router_mandatory, 1);
  return s;
}

zmq::socket_t make_dealer(zmq::context_t& ctx, const std::string& endpoint) {
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  configure_common(s);
  s.set(zmq::sockopt::reconnect_ivl, 100);
  s.set(zmq::sockopt::reconnect_ivl_max, 2000);
  s.connect(endpoint);
  return s;
}

namespace {
// A frame that takes over the encoded body instead of copying it (outputs reach 16 MiB), and
// keeps `attached` alive until libzmq lets go of it.
struct Owned {
  std::string body;
  std::shared_ptr<void> attached;
};
zmq::message_t owning_frame(std::string body, std::shared_ptr<void> attached = {}) {
  auto* owned = new Owned{std::move(body), std::move(attached)};
  return zmq::message_t(
      owned->body.data(), owned->body.size(),
      [](void*, void* hint) { delete static_cast<Owned*>(hint); }, owned);
}

// A frame over bytes that other frames share: it holds them until libzmq lets go.
struct Shared {
  std::shared_ptr<const std::string> body;
  std::shared_ptr<void> attached;
};
zmq::message_t shared_frame(std::shared_ptr<const std::string> body, std::shared_ptr<void> attached) {
  auto* held = new Shared{std::move(body), std::move(attached)};
  // libzmq never writes through the pointer it is given for a frame it sends.
  return zmq::message_t(
      const_cast<char*>(held->body->data()), held->body->size(),
      [](void*, void* hint) { delete static_cast<Shared*>(hint); }, held);
}

bool send_parts(zmq::socket_t& s, std::string_view peer, zmq::message_t body) {
  const std::string header = msg::header_frame();
  try {
    if (!peer.empty()) {
      if (!s.send(zmq::buffer(peer), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
        return false;
      }
    }
    // Once the first frame is queued, the rest of a multipart message is queued atomically.
    if (!s.send(zmq::buffer(header), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
      return false;
    }
    return s.send(body, zmq::send_flags::dontwait).has_value();
  } catch (const zmq::error_t&) {
    return false;  // EHOSTUNREACH with ROUTER_MANDATORY: the peer is gone
  }
}
}  // namespace

bool send(zmq::socket_t& dealer, const msg::Message& m) {
  return send_parts(dealer, {}, owning_frame(msg::encode(m)));
}

bool send_encoded(zmq::socket_t& dealer, std::string body, std::shared_ptr<void> attached) {
  return send_parts(dealer, {}, owning_frame(std::move(body), std::move(attached)));
}

bool send_to(zmq::socket_t& router, std::string_view peer, const msg::Message& m) {
  if (peer.empty()) return false;
  return send_parts(router, peer, owning_frame(msg::encode(m)));
}

bool send_encoded_to(zmq::socket_t& router, std::string_view peer, std::string body,
                     std::shared_ptr<void> attached) {
  if (peer.empty()) return false;
  return send_parts(router, peer, owning_frame(std::move(body), std::move(attached)));
}

bool send_shared_to(zmq::socket_t& router, std::string_view peer,
                    std::shared_ptr<const std::string> body, std::shared_ptr<void> attached) {
  if (peer.empty() || !body) return false;
  return send_parts(router, peer, shared_frame(std::move(body), std::move(attached)));
}

std::optional<Received> recv(zmq::socket_t& s, bool dontwait, size_t max_frames) {
  Received r;
  try {
    for (;;) {
      zmq::message_t part;
      const auto flags = dontwait ? zmq::recv_flags::dontwait : zmq::recv_flags::none;
      if (!s.recv(part, r.frames.empty() ? flags : zmq::recv_flags::none)) return std::nullopt;
      // A ROUTER makes up the routing-id frame itself, so only the frames that came over the
      // wire know their connection: take the first one that does.
      if (r.src_fd < 0) r.src_fd = zmq_msg_get(part.handle(), ZMQ_SRCFD);
      const bool more = part.more();
      if (r.frames.size() <= max_frames) r.frames.push_back(std::move(part));
      if (!more) break;
    }
  } catch (const zmq::error_t&) {
    return std::nullopt;
  }
  return r;
}

msg::Decoded decode_frames(const Received& r, size_t first) {
  if (r.frames.size() != first + 2) {
    msg::Decoded d;
    d.error = msg::DecodeError::kFrameCount;
    d.detail = "expected " + std::to_string(first + 2) + " frames, got " +
               std::to_string(r.frames.size());
    return d;
  }
  return msg::decode(view(r.frames[first]), view(r.frames[first + 1]));
}

}  // namespace simpleci::net
