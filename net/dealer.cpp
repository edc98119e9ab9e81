#include "net/dealer.h"

#include "net/curve.h"
#include "net/transport.h"

namespace simpleci::net {

DealerConnection::DealerConnection(zmq::context_t& ctx, std::string endpoint,
                                   std::string server_key, std::string secret_key)
    : ctx_(ctx),
      endpoint_(std::move(endpoint)),
      server_key_(std::move(server_key)),
      secret_key_(std::move(secret_key)) {
  open();
}

bool DealerConnection::send(const msg::Message& m) {
  if (!std::holds_alternative<msg::Output>(m)) return net::send(sock_, m);
  std::string body = msg::encode(m);
  const size_t n = body.size();
  std::shared_ptr<std::atomic<size_t>> counter = output_in_flight_;
  counter->fetch_add(n);
  std::shared_ptr<void> release(nullptr, [counter, n](void*) { counter->fetch_sub(n); });
  return net::send_encoded(sock_, std::move(body), std::move(release));
}

void DealerConnection::reconnect() {
  sock_.close();
  open();
}

void DealerConnection::open() {
  sock_ = zmq::socket_t(ctx_, zmq::socket_type::dealer);
  configure_common(sock_);
  sock_.set(zmq::sockopt::reconnect_ivl, 100);
  sock_.set(zmq::sockopt::reconnect_ivl_max, 2000);
  // CURVE options must be in place before connect.
  if (!server_key_.empty()) curve::configure_client(sock_, server_key_, secret_key_);
  sock_.connect(endpoint_);
}

}  // namespace simpleci::net
