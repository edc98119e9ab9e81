// A loopback TCP relay that records every byte it forwards: stands in for a packet capture, to
// check what a peer would see on the wire.
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <thread>

namespace simpleci::itest {

class TcpRelay {
 public:
  // Listens on 127.0.0.1 (OS-chosen port) and forwards each connection to 127.0.0.1:target_port.
  explicit TcpRelay(int target_port);
  ~TcpRelay();
  TcpRelay(const TcpRelay&) = delete;
  TcpRelay& operator=(const TcpRelay&) = delete;

  int port() const { return port_; }
  std::string captured() const;  // both directions, in arrival order

 private:
  void loop();

  int target_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  int stop_pipe_[2] = {-1, -1};
  mutable std::mutex mu_;
  std::string captured_;
  std::thread thread_;
};

}  // namespace simpleci::itest
