#include "web/sse.h"

#include <deque>
#include <vector>

#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

namespace simpleci::web {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

const std::string_view kSseHead =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/event-stream\r\n"
    "Cache-Control: no-cache\r\n"
    "X-Accel-Buffering: no\r\n"
    "Connection: close\r\n"
    "\r\n";

class SseClient : public std::enable_shared_from_this<SseClient> {
 public:
  SseClient(SseHub& hub, tcp::socket sock) : hub_(hub), sock_(std::move(sock)) {}

  void push(std::shared_ptr<const std::string> frame) {
    if (closed_) return;
    if (queued_ + frame->size() > kSseClientBudget) {
      spdlog::warn("web: an SSE client fell {} bytes behind; closing it (it resumes with Last-Event-ID)", queued_);
      close();
      return;
    }
    queued_ += frame->size();
    queue_.push_back(std::move(frame));
    if (!writing_) write();
  }

  // A page never sends anything after its request: a read that completes means it left.
  void watch_hangup() {
    sock_.async_read_some(asio::buffer(scratch_), [self = shared_from_this()](auto ec, size_t) {
      if (ec) return self->close();
      self->watch_hangup();
    });
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    boost::system::error_code ignored;
    sock_.shutdown(tcp::socket::shutdown_both, ignored);
    sock_.close(ignored);
    if (!writing_) queue_.clear();  // a write in flight still points into the queue
    hub_.clients_.erase(shared_from_this());
  }

  bool idle() const { return queue_.empty(); }

 private:
  // Everything queued in one gathered write, so a burst of events costs one system call.
  void write() {
    writing_ = true;
    in_flight_ = queue_.size();
    std::vector<asio::const_buffer> bufs;
    bufs.reserve(in_flight_);
    for (const auto& f : queue_) bufs.push_back(asio::buffer(*f));
    asio::async_write(sock_, bufs, [self = shared_from_this()](auto ec, size_t) {
      self->writing_ = false;
      if (ec || self->closed_) return self->close();
      for (size_t i = 0; i < self->in_flight_; ++i) {
        self->queued_ -= self->queue_.front()->size();
        self->queue_.pop_front();
      }
      if (!self->queue_.empty()) self->write();
    });
  }

  SseHub& hub_;
  tcp::socket sock_;
  std::deque<std::shared_ptr<const std::string>> queue_;
  size_t queued_ = 0, in_flight_ = 0;
  bool writing_ = false, closed_ = false;
  char scratch_[256];
};

SseHub::SseHub(asio::io_context& ioc) : timer_(ioc), batch_timer_(ioc) { keepalive(); }

SseHub::~SseHub() = default;

void SseHub::start(tcp::socket sock, std::optional<EventId> last_id, const Model& m) {
  flush();  // what the model already holds must not reach the newcomer twice (replay + batch)
  auto c = std::make_shared<SseClient>(*this, std::move(sock));
  clients_.insert(c);
  std::string first(kSseHead);
  if (last_id) {
    auto replay = m.replay_after(last_id->feed, last_id->seq);
    first += replay ? *replay : sse_resync(m.event_id(), "missed events");
  }
  c->push(std::make_shared<const std::string>(std::move(first)));
  c->watch_hangup();
}

void SseHub::broadcast(const std::string& frame) {
  if (clients_.empty()) return;
  batch_ += frame;
  if (batch_armed_) return;
  batch_armed_ = true;
  batch_timer_.expires_after(kSseBatch);
  batch_timer_.async_wait([this](auto ec) {
    if (!ec) flush();
  });
}

void SseHub::flush() {
  if (batch_armed_) {
    batch_armed_ = false;
    batch_timer_.cancel();
  }
  if (batch_.empty()) return;
  auto shared = std::make_shared<const std::string>(std::move(batch_));
  batch_.clear();
  // push may close a client and erase it from the set: iterate over a copy.
  std::vector<std::shared_ptr<SseClient>> all(clients_.begin(), clients_.end());
  for (auto& c : all) c->push(shared);
}

void SseHub::keepalive() {
  timer_.expires_after(kSseKeepalive);
  timer_.async_wait([this](auto ec) {
    if (ec) return;
    auto line = std::make_shared<const std::string>(": keepalive\n\n");
    std::vector<std::shared_ptr<SseClient>> all(clients_.begin(), clients_.end());
    for (auto& c : all) {
      if (c->idle()) c->push(line);
    }
    keepalive();
  });
}

}  // namespace simpleci::web
