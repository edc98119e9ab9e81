// A stand-in for the dispatcher, shared by the benchmarks (`simpleci-bench soak`) and the tests
// that drive a real runner or observer without one (tests/integration/runner_trust_test.cpp):
// a ROUTER on an OS-chosen loopback port that hands over what peers send and answers the last
// one that spoke. Header-only, so a test needs nothing but simpleci_net to use it.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <variant>

#include <zmq.hpp>

#include "messages/codec.h"
#include "net/transport.h"

namespace simpleci::bench {

class FakeDispatcher {
 public:
  FakeDispatcher() : sock_(net::make_router(ctx_)) {
    sock_.bind("tcp://127.0.0.1:*");
    endpoint_ = sock_.get(zmq::sockopt::last_endpoint);
  }
  const std::string& endpoint() const { return endpoint_; }

  // The next valid message within timeout (remembering who sent it); nullopt otherwise.
  // Frames that do not decode are skipped.
  std::optional<msg::Message> next(std::chrono::milliseconds timeout) {
    using Clock = std::chrono::steady_clock;
    zmq::pollitem_t item{sock_.handle(), 0, ZMQ_POLLIN, 0};
    const auto deadline = Clock::now() + timeout;
    do {
      while (auto r = net::recv(sock_, true)) {
        if (r->frames.size() != 3) continue;
        peer_ = std::string(net::view(r->frames[0]));
        auto d = net::decode_frames(*r, 1);
        if (d.ok()) return d.message;
      }
      zmq::poll(&item, 1, std::chrono::milliseconds(10));
    } while (Clock::now() < deadline);
    return std::nullopt;
  }

  // The next message of type T within timeout, skipping any other; nullopt otherwise.
  template <typename T>
  std::optional<T> wait_for(std::chrono::milliseconds timeout) {
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + timeout;
    for (auto left = timeout; left.count() > 0;
         left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now())) {
      std::optional<msg::Message> m = next(left);
      if (!m) break;
      if (auto* t = std::get_if<T>(&*m)) return std::move(*t);
    }
    return std::nullopt;
  }

  // Sends m to the peer that spoke last; false when it could not be queued.
  bool send(const msg::Message& m) { return net::send_to(sock_, peer_, m); }

 private:
  zmq::context_t ctx_{1};
  zmq::socket_t sock_;
  std::string endpoint_, peer_;
};

}  // namespace simpleci::bench
