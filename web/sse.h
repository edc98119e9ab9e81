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
// Events are gathered this long before they go to every client, so a burst costs one write per
// client per batch instead of one per event (200 clients x 2,500 events is 500,000 writes).
inline constexpr std::chrono::milliseconds kSseBatch{5};

// The response head of an event stream.
extern const std::string_view kSseHead;

class SseClient;

class SseHub {
 public:
  explicit SseHub(boost::asio::io_context& ioc);
  ~SseHub();

  // Takes over a connection whose request asked for /api/events: writes the head, then with
  // last_id the events after it when the model still holds them all, else a resync frame.
  void start(boost::asio::ip::tcp::socket sock, std::optional<EventId> last_id, const Model& m);
  // Queues frame for every client: it leaves within kSseBatch, with the frames queued meanwhile.
  void broadcast(const std::string& frame);
  size_t clients() const { return clients_.size(); }

 private:
  friend class SseClient;
  void keepalive();
  void flush();  // the gathered frames to every client, now

  boost::asio::steady_timer timer_;
  boost::asio::steady_timer batch_timer_;
  std::string batch_;  // frames broadcast since the last flush
  bool batch_armed_ = false;
  std::set<std::shared_ptr<SseClient>> clients_;
};

}  // namespace simpleci::web
