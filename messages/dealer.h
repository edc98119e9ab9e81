// A client's connection to the dispatcher: one DEALER, optionally CURVE-encrypted, that can be
// thrown away and replaced by a fresh one (new routing id) when the dispatcher seems gone.
#pragma once

#include <string>

#include <zmq.hpp>

#include "messages/messages.h"

namespace simpleci::net {

class DealerConnection {
 public:
  // server_key / secret_key: Z85 keys; both empty for a plain connection.
  DealerConnection(zmq::context_t& ctx, std::string endpoint, std::string server_key = {},
                   std::string secret_key = {});
  bool send(const msg::Message& m);
  void reconnect();
  zmq::socket_t& socket() { return sock_; }
  const std::string& endpoint() const { return endpoint_; }

 private:
  void open();
  zmq::context_t& ctx_;
  std::string endpoint_, server_key_, secret_key_;
  zmq::socket_t sock_;
};

}  // namespace simpleci::net
