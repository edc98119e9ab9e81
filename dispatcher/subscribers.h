// Subscribers: the peers subscribed to the event feed (PROTOCOL.md "Events") and the feed's own
// state. It answers "who gets this feed message, and who has to be dropped for it".
//
// It owns, per subscriber (by routing id), the jobs it follows, whether it wants every job's
// output, and the bytes of feed messages queued for it in the current round; and the feed's id
// and newest seq, and when the next keepalive is due. It knows nothing of sockets: what the
// transport still holds for a peer is asked through an InFlight function (the Outbox's
// peer_bytes), so the byte budget is tested with plain numbers.
//
// The budget counts two things: bytes handed to the transport and not yet written to the peer's
// connection (InFlight, the reply budget's count for the peer: that includes any other reply to
// it, which only makes the bound tighter), and bytes of feed messages queued in this round and
// not handed over yet (they wait in the Round until its commit). The second count is kept here
// rather than checked at send time, so a peer is dropped while the message is still only
// queued, and the Round never holds more than the budget for anyone; round_sent() clears it once
// the Round has handed them over.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "messages/limits.h"

namespace simpleci::dispatcher {

class Subscribers {
 public:
  // Bytes the transport holds for a peer, not yet written to its connection.
  using InFlight = std::function<size_t(std::string_view peer)>;

  Subscribers(uint64_t feed_id, InFlight in_flight, size_t budget = msg::kFeedBudgetBytes,
              size_t max_subscribers = msg::kMaxSubscribers);

  uint64_t feed() const { return feed_; }
  // The newest event's seq (0 before the first); next_seq() numbers a new event.
  uint64_t seq() const { return seq_; }
  uint64_t next_seq() { return ++seq_; }

  enum class Subscribed : uint8_t { kNew, kRenewed, kFull };
  // Adds peer, or replaces what a subscribed peer follows. kFull: max_subscribers others are
  // subscribed (nothing changed). The first subscriber starts the keepalive clock at now.
  Subscribed subscribe(std::string_view peer, const std::vector<uint64_t>& follow, bool all_output,
                       SteadyTime now);
  // Forgets peer; false when it was not subscribed.
  bool remove(std::string_view peer);
  bool contains(std::string_view peer) const { return subs_.contains(peer); }
  size_t size() const { return subs_.size(); }
  bool empty() const { return subs_.empty(); }

  // Who gets a feed message of `bytes`: `to` are charged for it this round; `dropped` would have
  // gone past the budget and are forgotten (they are owed one EVENT dropped, outside the budget).
  struct Fanout {
    std::vector<std::string> to, dropped;
  };
  // An EVENT: every subscriber.
  Fanout event(size_t bytes);
  // A chunk of job_id's output: the subscribers that follow it, or every job's output.
  Fanout output(uint64_t job_id, size_t bytes);
  // A message queued for peer this round that is not refused for the budget (its SNAPSHOT) but
  // counts against it.
  void charge(std::string_view peer, size_t bytes);
  // The round's messages were handed to the transport: from now on InFlight counts them.
  void round_sent();

  // True when a keepalive is due (at most once per kFeedKeepaliveMs while anyone subscribes).
  bool keepalive_due(SteadyTime now);

 private:
  struct Subscriber {
    std::set<uint64_t> follow;
    bool all_output = false;
    size_t round_bytes = 0;  // feed messages queued this round, not yet handed over
  };
  Fanout fan_out(size_t bytes, const std::function<bool(const Subscriber&)>& wants);

  const uint64_t feed_;
  const InFlight in_flight_;
  const size_t budget_;
  const size_t max_;
  uint64_t seq_ = 0;
  std::map<std::string, Subscriber, std::less<>> subs_;
  SteadyTime next_keepalive_{};
};

// A feed id for a dispatcher that starts now: random, not 0, and below 2^53 so a JSON reader
// (simpleci-web's clients) keeps it exact.
uint64_t random_feed_id();

}  // namespace simpleci::dispatcher
