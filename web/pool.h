// Dispatcher requests (JOBS, WATCH, METRICS, ...) for the web's I/O thread, which must never
// block: a few worker threads, each with its own DEALER, run net::request and hand the answer
// back through `post` (onto the I/O thread).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "app/cli.h"
#include "messages/messages.h"

namespace simpleci::web {

using Reply = std::optional<msg::Message>;  // nullopt: no answer in time
using Post = std::function<void(std::function<void()>)>;

class RequestPool {
 public:
  // max_waiting: requests queued for a worker before submit() refuses more.
  RequestPool(zmq::context_t& ctx, cli::Dispatcher d, Post post, int threads = 4,
              std::chrono::milliseconds timeout = std::chrono::seconds(5), size_t max_waiting = 1024);
  ~RequestPool();  // stop()
  RequestPool(const RequestPool&) = delete;
  RequestPool& operator=(const RequestPool&) = delete;

  // Sends req (its request id is set here) from a worker; done(reply) then runs through post.
  // False when too many requests wait already (the caller answers 503).
  bool submit(msg::Message req, std::function<void(Reply)> done);
  // Ends the workers after the request each is in; what waits is dropped (done never runs).
  void stop();

 private:
  struct Task {
    msg::Message req;
    std::function<void(Reply)> done;
  };
  void work();

  zmq::context_t& ctx_;
  cli::Dispatcher d_;
  Post post_;
  std::chrono::milliseconds timeout_;
  size_t max_waiting_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> tasks_;
  bool stopping_ = false;
  uint64_t next_id_ = 1;
  std::vector<std::thread> threads_;
};

// Sets the request id of any request message (those without one are left alone).
void set_request_id(msg::Message& m, uint64_t id);

}  // namespace simpleci::web
