// The web's subscription: a thread that runs net::Feed (its own DEALER, polled with zmq::poll)
// and posts what it hears onto the I/O thread, where the Server updates the model and tells the
// pages. The I/O thread never touches a ZeroMQ socket.
#pragma once

#include <atomic>
#include <thread>

#include <zmq.hpp>

#include "net/feed.h"
#include "web/pool.h"

namespace simpleci::web {

class Server;

class FeedThread {
 public:
  FeedThread(zmq::context_t& ctx, net::FeedOptions opt, Post post, Server& server);
  ~FeedThread();  // stop()
  void start();
  // Unsubscribes and joins.
  void stop();

 private:
  void run();

  zmq::context_t& ctx_;
  net::FeedOptions opt_;
  Post post_;
  Server& server_;
  int wake_fd_ = -1;  // eventfd: stop() makes it readable
  std::thread thread_;
};

}  // namespace simpleci::web
