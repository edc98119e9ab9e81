// The observer's logic: poll git on a timer, queue every new commit of the watched branches
// (oldest first), send each as COMMIT, and move the per-branch cursor (kept in a state file)
// only past commits the dispatcher ACCEPTED, strictly in order. Unanswered COMMITs are re-sent
// (the dispatcher deduplicates them); a silent dispatcher gets a fresh connection with backoff.
// It says OBSERVER_HELLO on connecting and every kObserverHelloMs, and a WAKE from the dispatcher
// (a push was notified) makes it poll at once, though never sooner than min_wake_gap after its
// last poll, so a flood of notifies costs at most one poll per gap.
// Single-threaded; tests drive it with a FakeClock and call poll_git() directly.
#pragma once

#include <deque>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/clock.h"
#include "messages/codec.h"
#include "net/dealer.h"
#include "common/logging.h"
#include "observer/git_watch.h"

namespace simpleci::observer {

using net::Link;

struct Options {
  std::string clone_dir;
  std::vector<std::string> branches;
  std::string state_file;
  Millis poll{1000};
  Millis resend{2000};      // no ACCEPTED within this: send the COMMIT again
  size_t window = 64;       // COMMITs in flight at once
  Millis min_wake_gap{msg::kMinWakeGapMs};  // a WAKE polls no sooner than this after the last poll
  Millis hello{msg::kObserverHelloMs};      // OBSERVER_HELLO interval
};

class Observer {
 public:
  Observer(Clock& clock, Link& link, Options opt);

  // Reads the cursors from the state file (missing file: first start).
  bool load_state(std::string* err);
  // Set when the dispatcher speaks another protocol version: main stops, prints it, exits 1.
  const std::string& version_error() const { return version_error_; }
  // Fetches origin when a watched branch moved there, and queues new commits. False (logged)
  // when origin could not be read or fetched.
  bool poll_git();
  void on_frames(const std::string& header, const std::string& body);
  // Polls git when due, sends, re-sends, reconnects.
  void tick();
  Millis next_wakeup() const;

  const std::map<std::string, std::string>& cursors() const { return cursors_; }
  const GitWatch& git() const { return git_; }
  uint64_t polls() const { return polls_; }

 private:
  struct Item {
    std::string branch, commit;
    uint64_t request_id = 0;
    bool sent = false, accepted = false;
    SteadyTime sent_at{}, retry_at{};
  };
  void send_due();
  void say_hello(SteadyTime now);
  void wake(const msg::Wake& w);
  void advance();
  bool save_state(std::string* err);

  Clock& clock_;
  Link& link_;
  Options opt_;
  GitWatch git_;
  std::map<std::string, std::string> cursors_;  // branch -> last accepted commit
  std::deque<Item> items_;
  uint64_t next_request_ = 1;
  SteadyTime next_poll_{}, last_poll_{}, last_reply_{}, reconnect_at_{}, next_hello_{};
  uint64_t polls_ = 0;
  bool waiting_reconnect_ = false;
  Millis backoff_{1000};
  LogLimiter bad_log_;
  std::string version_error_;
};

}  // namespace simpleci::observer
