#include "net/request.h"

#include <algorithm>
#include <thread>

#include "net/transport.h"

namespace simpleci::net {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kFirstBusyPause{20};
constexpr milliseconds kLongestBusyPause{500};

// The next message that decodes, or nullopt when none came before deadline.
std::optional<msg::Message> next_reply(zmq::socket_t& s, Clock::time_point deadline) {
  while (true) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return std::nullopt;
    zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, left);
    auto r = recv(s, true, 2);
    if (!r) continue;
    msg::Decoded d = decode_frames(*r, 0);
    if (d.ok()) return std::move(d.message);
    // Another protocol version cannot answer anything we ask: an error the caller shows.
    if (d.error == msg::DecodeError::kVersion) {
      return msg::Error{0, msg::ErrorCode::kVersionMismatch, msg::dispatcher_version_line(d)};
    }
  }
}

bool is_busy(const msg::Message& m) {
  const auto* e = std::get_if<msg::Error>(&m);
  return e && e->code == msg::ErrorCode::kBusy;
}

}  // namespace

uint64_t request_id_of(const msg::Message& m) {
  return std::visit(
      [](const auto& v) -> uint64_t {
        if constexpr (requires { v.request_id; }) {
          return v.request_id;
        } else {
          return 0;
        }
      },
      m);
}

std::optional<msg::Message> request(DealerConnection& conn, const msg::Message& req,
                                    milliseconds timeout) {
  const uint64_t id = request_id_of(req);
  const auto deadline = Clock::now() + timeout;
  milliseconds pause = kFirstBusyPause;
  if (!conn.send(req)) return std::nullopt;
  while (auto m = next_reply(conn.socket(), deadline)) {
    const uint64_t echoed = request_id_of(*m);
    const bool error = std::holds_alternative<msg::Error>(*m);
    if (echoed != id && !(error && echoed == 0)) continue;  // a late reply to an earlier request
    if (!is_busy(*m) || echoed != id || Clock::now() + pause >= deadline) return m;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, kLongestBusyPause);
    if (!conn.send(req)) return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace simpleci::net
