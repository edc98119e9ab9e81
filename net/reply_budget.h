// Per-peer accounting of the reply bytes a ROUTER has handed to libzmq and libzmq has not yet
// released (written to the kernel, or dropped with the connection), so that peers that send
// requests and never read the replies cannot make the sender's memory grow without bound.
//
// The loop thread asks admit() before sending and attaches the Charge that charge() returns to
// the message (transport.h: send_encoded_to); libzmq's I/O thread destroys it when it releases
// the message, which gives the bytes back. Counters are atomic; the map of peers is touched by
// the loop thread only. A peer's record lives while a Charge holds it, and a peer with nothing
// in flight is forgotten by the next sweep, so peers that vanish leave nothing behind.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "messages/messages.h"

namespace simpleci::net {

struct ReplyLimits {
  size_t per_peer = size_t{32} << 20;  // ≥ the largest reply (kMaxFrameBytes)
  size_t total = size_t{256} << 20;    // across every peer
  size_t slack = size_t{1} << 20;      // extra room for the small ERROR busy answers
};

class ReplyBudget {
 public:
  enum class Verdict : uint8_t {
    kSend,            // within budget
    kOverBudget,      // the peer (or everyone together) has too many unreleased bytes
    kOutputInFlight,  // an output-carrying reply to this peer is not released yet
  };
  // Held by a message in flight; destroying it (any thread) gives its bytes back.
  class Charge;

  explicit ReplyBudget(ReplyLimits limits = {});

  // Whether a reply of `bytes` may go to peer now. with_slack: for the small ERROR busy that
  // replaces a refused reply (allowed up to limit + slack).
  Verdict admit(std::string_view peer, size_t bytes, bool carries_output,
                bool with_slack = false) const;
  // Counts `bytes` (and one output reply if carries_output) against peer until the returned
  // charge is destroyed.
  std::shared_ptr<Charge> charge(std::string_view peer, size_t bytes, bool carries_output);

  bool output_in_flight(std::string_view peer) const;
  size_t peer_bytes(std::string_view peer) const;
  size_t total_bytes() const { return totals_->bytes.load(std::memory_order_relaxed); }
  // Peers with a record (those with bytes in flight, plus any not swept yet).
  size_t tracked_peers() const { return peers_.size(); }
  // Forgets every peer with nothing in flight. charge() calls it when the map has doubled.
  void sweep();

 private:
  struct Account {
    std::atomic<size_t> bytes{0};
    std::atomic<uint32_t> outputs{0};
  };
  struct Totals {
    std::atomic<size_t> bytes{0};
  };
  const Account* find(std::string_view peer) const;

  ReplyLimits limits_;
  std::shared_ptr<Totals> totals_;  // shared with charges: libzmq may release after we are gone
  std::unordered_map<std::string, std::shared_ptr<Account>> peers_;
  size_t sweep_at_ = 64;
};

class ReplyBudget::Charge {
 public:
  Charge(std::shared_ptr<Account> a, std::shared_ptr<Totals> t, size_t bytes, bool output);
  ~Charge();
  Charge(const Charge&) = delete;
  Charge& operator=(const Charge&) = delete;

 private:
  std::shared_ptr<Account> account_;
  std::shared_ptr<Totals> totals_;
  size_t bytes_;
  bool output_;
};

// What the table of message types (messages/messages.h) says of a message for the budget.
// Replies that carry job output (a RESULTS_REPLY with output, a WATCH_REPLY with data: the
// rows with an `output` field, when it is not empty): at most one of these is in flight per peer.
bool carries_output(const msg::Message& m);
// Messages the budget may refuse: everything but what runners need to work (JOB, RESULT_ACK,
// WELCOME, HEARTBEAT, CANCEL_JOB: the rows with budgeted = false), which is small and bounded by
// the runners' capacity.
bool budgeted(const msg::Message& m);
// The request id a reply echoes (rows with RequestId::kEchoes); nullopt for other messages.
std::optional<uint64_t> reply_request_id(const msg::Message& m);

}  // namespace simpleci::net
