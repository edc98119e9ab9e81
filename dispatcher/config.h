// The dispatcher's settings (from the command line, see main.cpp) and the Outbox its replies go
// through: the two things every part of the dispatcher is built from.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "messages/codec.h"
#include "messages/limits.h"
#include "messages/messages.h"

namespace simpleci::dispatcher {

// Defaults are the production behaviour; a test that wants another path sets it explicitly.
struct Config {
  uint32_t heartbeat_ms = msg::kDefaultHeartbeatMs;
  uint32_t max_attempts = msg::kDefaultMaxAttempts;
  uint32_t job_timeout_s = msg::kDefaultJobTimeoutS;
  uint64_t output_cap = msg::kMaxOutputCap;
  std::string test_command{msg::kDefaultTestCommand};
  std::filesystem::path results_dir = "test_results";
  bool require_identity = false;  // CURVE: a runner's name must equal its key's name
  bool async_files = true;        // write result files on a ResultWriter thread (false: on the loop)
  bool fsync_results = false;     // fsync each result file (the store is the durable record)
  size_t live_window = msg::kDefaultLiveWindow;  // newest output bytes kept per running job for watchers
  uint64_t max_queued = msg::kDefaultMaxQueued;  // a COMMIT or RETRY past this many queued jobs: queue_full
  uint32_t prune_after_days = 0;  // prune final jobs older than this, hourly; 0 = never
  // The named repositories (--repo NAME=URL, --repo-limit NAME=N); the unnamed one is always served.
  std::vector<msg::RepoInfo> repos{};
  // Whether WELCOME, REPOS and JOB carry the repositories' URLs: only where the peer has
  // authenticated this dispatcher (CURVE); elsewhere they carry names only (docs/MULTI.md).
  bool send_urls = false;
};

// --repo NAME=URL and --repo-limit NAME=N, as given (each repeatable), into out; false with a
// one-line *err for a bad or repeated name, an empty or overlong URL, a limit for a repository
// not declared, or a limit out of range.
bool parse_repo_flags(const std::vector<std::string>& repos, const std::vector<std::string>& limits,
                      std::vector<msg::RepoInfo>* out, std::string* err);

// A message encoded once and sent as is to many peers (the event feed's EVENT, EVENTS and
// JOB_OUTPUT): each peer's copy shares these bytes.
struct SharedBody {
  std::shared_ptr<const std::string> bytes;
  msg::MessageType type{};
};

// Where replies go. The server implements it over the ROUTER; tests capture.
class Outbox {
 public:
  virtual ~Outbox() = default;
  // False when the peer is gone or its queue is full; the message is then dropped. An outbox
  // with a reply budget (net::ReplyBudget) may answer a reply with ERROR busy instead.
  virtual bool send(std::string_view peer, const msg::Message& m) = 0;
  // The same for a shared body, which has no ERROR busy form (a feed message is never an answer).
  // This default decodes it and calls send(), for outboxes that look at messages (tests).
  virtual bool send_shared(std::string_view peer, const SharedBody& b) {
    msg::Decoded d = msg::decode_body(*b.bytes);
    return d.ok() && send(peer, d.message);
  }
  // True while an output-carrying reply (RESULTS_REPLY with output, WATCH_REPLY with data) sent
  // to peer is not released by the transport: the dispatcher then answers another request for
  // output with ERROR busy before reading any output.
  virtual bool output_in_flight(std::string_view /*peer*/) const { return false; }
  // Replies the outbox refused for the peer's budget; reported as send.over_budget.
  virtual uint64_t over_budget() const { return 0; }
  // Bytes sent to peer that the transport holds and has not written to its connection yet (the
  // event feed's budget).
  virtual size_t peer_bytes(std::string_view /*peer*/) const { return 0; }
};

}  // namespace simpleci::dispatcher
