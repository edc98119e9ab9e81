#include "tools/client/session.h"

#include "net/request.h"

namespace simpleci::client {

std::string error_line(const msg::Error& e) {
  if (e.code == msg::ErrorCode::kQueueFull) {
    return "the dispatcher's queue is full (" + e.text + "); try again later";
  }
  return "dispatcher: " + e.text;
}

int unexpected_reply() {
  return cli::fail(kProgram, "unexpected reply from the dispatcher", cli::kRuntimeError);
}

int Session::open() {
  cli::Dispatcher d;
  if (auto stop = o_.conn.resolve(kProgram, &d)) return *stop;
  if (!cli::in_range(kProgram, "--timeout-ms", o_.timeout_ms, 1, msg::kMaxClientTimeoutMs)) {
    return cli::kUsageError;
  }
  conn_.emplace(ctx_, d.endpoint, d.server_key, d.secret_key);
  return 0;
}

int Session::ask(const msg::Message& req, msg::Message* reply) {
  if (!conn_) {
    if (int rc = open()) return rc;
  }
  std::optional<msg::Message> m = net::request(*conn_, req, std::chrono::milliseconds(o_.timeout_ms));
  if (!m) {
    return cli::fail(kProgram,
                     "no answer from " + conn_->endpoint() + " within " + std::to_string(o_.timeout_ms) + " ms",
                     cli::kRuntimeError);
  }
  if (const auto* e = std::get_if<msg::Error>(&*m)) return cli::fail(kProgram, error_line(*e), cli::kRuntimeError);
  *reply = std::move(*m);
  return 0;
}

}  // namespace simpleci::client
