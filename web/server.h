// simpleci-web's HTTP server: Boost.Beast on one I/O thread (docs/ARCHITECTURE.md says why).
// Every connection is a small state machine of asynchronous reads and writes; what needs the
// dispatcher goes through the RequestPool and comes back on the same thread, so nothing here
// blocks and nothing here needs a lock. Routes and headers: docs/HTTP.md.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "web/model.h"
#include "web/pool.h"
#include "web/query.h"

namespace simpleci::web {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// Output streams waiting for news of a job: an event about it ends their wait at once instead
// of at their timer.
class JobWaiters {
 public:
  void add(uint64_t job_id, const std::shared_ptr<asio::steady_timer>& timer);
  void wake(uint64_t job_id);
  size_t size() const;

 private:
  std::map<uint64_t, std::vector<std::weak_ptr<asio::steady_timer>>> waiting_;
};

class SseHub;

// What every connection's handler reaches. I/O thread only.
struct Context {
  asio::io_context& ioc;
  RequestPool& pool;
  Model model;
  JobWaiters waiters;
  std::unique_ptr<SseHub> hub;
  Context(asio::io_context& io, RequestPool& p);
  ~Context();
};

class Server {
 public:
  Server(asio::io_context& ioc, RequestPool& pool);
  ~Server();

  // Binds and starts accepting; false with *err when the address cannot be bound.
  bool listen(const ListenAddress& a, std::string* err);
  tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }

  // The feed's news, on the I/O thread (the feed thread posts them here).
  void on_snapshot(const msg::Snapshot& s);
  void on_event(const msg::Event& e);
  void on_interrupted(const std::string& why);

  Context& context() { return ctx_; }

 private:
  void accept();

  Context ctx_;
  tcp::acceptor acceptor_;
  asio::steady_timer retry_;
};

}  // namespace simpleci::web

namespace simpleci::web {

// A whole response as bytes, for handlers that took the socket over: status line, Content-Type,
// Content-Length, Connection: close.
std::string raw_response(int status, std::string_view content_type, std::string_view body);
// {"error": text} as a JSON body.
std::string error_body(std::string_view text);

// What a dispatcher reply that is not the one wanted means for HTTP: nullopt → 503 (no answer),
// ERROR not_found → 404, busy → 503, another ERROR → 502; with the message for error_body.
std::pair<int, std::string> dispatcher_failure(const Reply& r);

}  // namespace simpleci::web
