// Server-Sent Events to many pages at once (/api/events). Each client is a queue of shared
// frames (one copy of an event however many clients get it) written in one gathered write;
// a client whose queue passes kSseClientBudget is closed (it reconnects with Last-Event-ID).
// One timer sends every client a comment line every 10 s so proxies and browsers keep the
// connection. I/O thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "web/model.h"

namespace simpleci::web {

inline constexpr size_t kSseClientBudget = size_t{1} << 20;
inline constexpr std::chrono::seconds kSseKeepalive{10};

// The response head of an event stream.
extern const std::string_view kSseHead;

class SseClient;

class SseHub {
 public:
  explicit SseHub(boost::asio::io_context& ioc);
  ~SseHub();

  // Takes over a connection whose request asked for /api/events: writes the head, then with
  // last_id the events after it when the model still holds them all, else a resync frame.
  void start(boost::asio::ip::tcp::socket sock, std::optional<uint64_t> last_id, const Model& m);
  // Queues frame for every client.
  void broadcast(const std::string& frame);
  size_t clients() const { return clients_.size(); }

 private:
  friend class SseClient;
  void keepalive();

  boost::asio::steady_timer timer_;
  std::set<std::shared_ptr<SseClient>> clients_;
};

}  // namespace simpleci::web
