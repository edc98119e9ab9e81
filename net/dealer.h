// A client's connection to the dispatcher: one DEALER, optionally CURVE-encrypted, that can be
// thrown away and replaced by a fresh one (new routing id) when the dispatcher seems gone.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include <zmq.hpp>

#include "messages/messages.h"

namespace simpleci::net {

// A client's way to the dispatcher, as the runner's and observer's logic see it (tests fake it).
class Link {
 public:
  virtual ~Link() = default;
  // Queues m without blocking; false when it cannot be queued now.
  virtual bool send(const msg::Message& m) = 0;
  // Bytes of OUTPUT messages queued and not yet written to the connection: a runner stops
  // streaming live output past a bound, so a dispatcher that reads slowly cannot make the
  // runner's queue (and memory) grow with a flood of output.
  virtual size_t output_in_flight() const { return 0; }
  // Drops the connection and opens a new one (a new routing id).
  virtual void reconnect() = 0;
};

class DealerConnection final : public Link {
 public:
  // server_key / secret_key: Z85 keys; both empty for a plain connection.
  DealerConnection(zmq::context_t& ctx, std::string endpoint, std::string server_key = {},
                   std::string secret_key = {});
  bool send(const msg::Message& m) override;
  void reconnect() override;
  size_t output_in_flight() const override { return output_in_flight_->load(); }
  zmq::socket_t& socket() { return sock_; }
  const std::string& endpoint() const { return endpoint_; }

 private:
  void open();
  zmq::context_t& ctx_;
  std::string endpoint_, server_key_, secret_key_;
  zmq::socket_t sock_;
  // Decremented by libzmq's I/O thread when it frees a frame, hence atomic and shared.
  std::shared_ptr<std::atomic<size_t>> output_in_flight_ = std::make_shared<std::atomic<size_t>>(0);
};

}  // namespace simpleci::net
