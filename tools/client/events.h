// The client's side of the event feed: `simpleci events`, and the push half of `simpleci watch`
// (commands.h), both through a FeedSource so tests can script the feed.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <vector>

#include "common/clock.h"
#include "net/feed.h"
#include "tools/client/session.h"

namespace simpleci::client {

// A subscription to the dispatcher's events (a net::Feed in the program).
class FeedSource {
 public:
  virtual ~FeedSource() = default;
  // Subscribes, following the output of these jobs (all_output: of every job). 0, or the exit
  // code after one line on stderr (bad connection flags, unreadable key).
  virtual int start(std::vector<uint64_t> follow, bool all_output) = 0;
  // Waits up to `most` for the feed, handing what comes to h (and doing the feed's time-driven
  // work). Returns early when a signal arrives.
  virtual void run_for(Millis most, net::FeedHandler& h) = 0;
  virtual bool in_step() const = 0;
  // UNSUBSCRIBE, best effort.
  virtual void stop() = 0;
};

// The real one: a net::Feed on its own connection, opened with the session's flags.
class NetFeedSource final : public FeedSource {
 public:
  explicit NetFeedSource(const ConnectOptions& o) : o_(o) {}
  ~NetFeedSource() override;
  int start(std::vector<uint64_t> follow, bool all_output) override;
  void run_for(Millis most, net::FeedHandler& h) override;
  bool in_step() const override { return feed_ && feed_->in_step(); }
  void stop() override;

 private:
  const ConnectOptions& o_;
  SystemClock clock_;
  zmq::context_t ctx_{1};
  std::unique_ptr<net::Feed> feed_;
};

// Set by SIGINT / SIGTERM once install_stop_signals() ran: the feed loops end cleanly.
extern std::atomic<bool> g_stop_requested;
void install_stop_signals();

// Prints one line per event (format.h) until *stop is set; with follow_output also every job's
// output chunks. Flushes each line. Exit 0 after UNSUBSCRIBE.
int events(FeedSource& f, Clock& clock, bool json, bool follow_output, std::FILE* out,
           const std::atomic<bool>& stop = g_stop_requested);

}  // namespace simpleci::client
