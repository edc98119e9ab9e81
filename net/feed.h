// The subscriber's side of the event feed (messages/PROTOCOL.md "Events"): one DEALER that
// subscribes, hands SNAPSHOT, EVENT and JOB_OUTPUT to a FeedHandler, and starts over by itself
// when the feed breaks (EVENT dropped, a seq gap, another feed id, or 15 s of silence: then a
// new socket, with backoff). Used by `simpleci events`, `simpleci watch` and simpleci-web.
//
// Single-threaded: the owner polls socket() for input and calls process() when it is readable
// and tick() when wait() has passed. Time comes from a Clock, so tests drive the silence and
// backoff with a FakeClock.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <zmq.hpp>

#include "common/clock.h"
#include "messages/messages.h"

namespace simpleci::net {

struct FeedOptions {
  std::string endpoint;                  // validated by the caller (cli::ConnectFlags)
  std::string server_key, secret_key;    // Z85 CURVE keys; both empty for a plain connection
  std::vector<uint64_t> follow;          // jobs whose output to receive
  bool all_output = false;               // every running job's output
};

// What a Feed tells its owner, on the thread that calls process() / tick().
class FeedHandler {
 public:
  virtual ~FeedHandler() = default;
  // The feed (re)started: the dispatcher's state as of s.seq. What the owner built from events
  // before this is to be rebuilt from s.
  virtual void on_snapshot(const msg::Snapshot& s) = 0;
  // The next event, in order (seq = previous + 1). Never keepalive or dropped: the Feed handles
  // those itself.
  virtual void on_event(const msg::Event& e) = 0;
  // A chunk of a followed job's live output (its offset may jump: bytes the runner skipped).
  virtual void on_output(const msg::JobOutput& o) = 0;
  // The feed broke (why: "dropped by the dispatcher", "missed events 7..9", "dispatcher
  // restarted", "no word from the dispatcher for 15 s", ...). A snapshot follows once it is back.
  virtual void on_interrupted(std::string_view why) { (void)why; }
};

class Feed {
 public:
  Feed(zmq::context_t& ctx, FeedOptions opt, Clock& clock);
  ~Feed();
  Feed(const Feed&) = delete;
  Feed& operator=(const Feed&) = delete;

  // Opens the socket and sends SUBSCRIBE.
  void start();
  // The socket to poll for ZMQ_POLLIN (it changes when the Feed opens a new one: take it again
  // before every poll).
  zmq::socket_t& socket();
  // Reads every message waiting, without blocking, and hands it on. A frame that does not
  // decode is dropped (the dispatcher is trusted no further than any peer).
  void process(FeedHandler& h);
  // Time-driven work: re-sends an unanswered SUBSCRIBE, starts over after silence. Call when
  // wait() has passed (and after process()).
  void tick(FeedHandler& h);
  // How long the owner may sleep before tick() has work.
  Millis wait() const;
  // Follows these jobs from now on (sends SUBSCRIBE again; a new snapshot comes).
  void follow(std::vector<uint64_t> jobs);
  // Sends UNSUBSCRIBE (best effort) before the owner goes away.
  void stop();
  // True between a snapshot and the next break.
  bool in_step() const;
  uint64_t feed_id() const;   // 0 before the first snapshot
  uint64_t last_seq() const;  // the newest seq handed on (or the snapshot's)

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace simpleci::net
