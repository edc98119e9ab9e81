#include "web/pool.h"

#include <spdlog/spdlog.h>

#include "net/dealer.h"
#include "net/request.h"

namespace simpleci::web {

void set_request_id(msg::Message& m, uint64_t id) {
  std::visit([id](auto& body) {
    if constexpr (requires { body.request_id; }) body.request_id = id;
  }, m);
}

RequestPool::RequestPool(zmq::context_t& ctx, cli::Dispatcher d, Post post, int threads,
                         std::chrono::milliseconds timeout, size_t max_waiting)
    : ctx_(ctx), d_(std::move(d)), post_(std::move(post)), timeout_(timeout), max_waiting_(max_waiting) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { work(); });
}

RequestPool::~RequestPool() { stop(); }

void RequestPool::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    tasks_.clear();
  }
  cv_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

bool RequestPool::submit(msg::Message req, std::function<void(Reply)> done) {
  {
    std::lock_guard lock(mu_);
    if (stopping_ || tasks_.size() >= max_waiting_) return false;
    set_request_id(req, next_id_++);
    tasks_.push_back({std::move(req), std::move(done)});
  }
  cv_.notify_one();
  return true;
}

void RequestPool::work() {
  net::DealerConnection conn(ctx_, d_.endpoint, d_.server_key, d_.secret_key);
  for (;;) {
    Task t;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
      if (stopping_) return;
      t = std::move(tasks_.front());
      tasks_.pop_front();
    }
    Reply r = net::request(conn, t.req, timeout_);
    // No answer: the dispatcher may be gone or this socket stuck behind unread replies; the
    // next request starts on a fresh connection.
    if (!r) {
      spdlog::warn("web: no answer from the dispatcher at {} within {} ms", d_.endpoint, timeout_.count());
      conn.reconnect();
    }
    post_([done = std::move(t.done), r = std::move(r)]() mutable { done(std::move(r)); });
  }
}

}  // namespace simpleci::web
