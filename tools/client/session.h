// How the `simpleci` client reaches the dispatcher: one connection, one request at a time, each
// answered within --timeout-ms; problems become one line on stderr and an exit code.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <zmq.hpp>

#include "app/cli.h"
#include "messages/limits.h"
#include "messages/messages.h"
#include "net/dealer.h"

namespace simpleci::client {

inline constexpr const char* kProgram = "simpleci";
// `simpleci watch` of a job that ended other than passed (failed, timeout, cancelled, error).
inline constexpr int kJobNotPassed = 3;

// The flags every subcommand that talks to the dispatcher takes.
struct ConnectOptions {
  cli::ConnectFlags conn;
  int64_t timeout_ms = msg::kDefaultClientTimeoutMs;
};

// The client's way to the dispatcher (a Session; tests script one).
class Asker {
 public:
  virtual ~Asker() = default;
  // Sends req and waits for its reply (the one carrying req's request id). 0 with *reply set,
  // or the exit code after printing one line: 2 for bad connection flags, 1 for an unreadable
  // key, no answer in time, or an ERROR (error_line says how it reads).
  virtual int ask(const msg::Message& req, msg::Message* reply) = 0;
};

// The line (without "simpleci: ") that tells a person about an ERROR reply.
std::string error_line(const msg::Error& e);

// "unexpected reply from the dispatcher", exit 1: a reply of another type than asked for.
int unexpected_reply();

// A DEALER to the dispatcher, opened on the first ask() so a subcommand's own checks come first.
class Session final : public Asker {
 public:
  explicit Session(const ConnectOptions& o) : o_(o) {}
  int ask(const msg::Message& req, msg::Message* reply) override;

 private:
  int open();
  const ConnectOptions& o_;
  zmq::context_t ctx_{1};
  std::optional<net::DealerConnection> conn_;
};

}  // namespace simpleci::client
