// The dispatcher's socket loop: a ROUTER (plus its socket monitor and the signal fd) polled with
// zmq::poll, feeding a Dispatcher and flushing it after every round.
#pragma once

#include <filesystem>
#include <string>

#include "dispatcher/dispatcher.h"

namespace simpleci::dispatcher {

struct ServerOptions {
  std::string bind;  // already validated by parse_bind_endpoint
  std::filesystem::path state_dir;
  std::string curve_secret_key_file;  // both empty: no CURVE
  std::string authorized_keys_dir;
  Config config;
};

// Runs until SIGINT/SIGTERM (signal_fd). Returns a process exit code; on a start-up failure
// prints one line "simpleci-dispatcher: ..." to stderr and returns 1.
int run_server(const ServerOptions& opt, int signal_fd);

}  // namespace simpleci::dispatcher
