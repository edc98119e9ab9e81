#include "tools/client/events.h"

#include <algorithm>
#include <csignal>

#include "tools/client/format.h"

namespace simpleci::client {

std::atomic<bool> g_stop_requested{false};

namespace {

void on_stop_signal(int) { g_stop_requested = true; }

// Longest sleep between looks at the stop flag (a signal usually cuts the poll short anyway).
constexpr Millis kStopCheck(200);

class Printer final : public net::FeedHandler {
 public:
  Printer(Clock& clock, bool json, bool follow_output, std::FILE* out)
      : clock_(clock), json_(json), follow_output_(follow_output), out_(out) {}
  void on_snapshot(const msg::Snapshot& s) override { put(snapshot_line(s, clock_.wall_ms(), json_)); }
  void on_event(const msg::Event& e) override { put(event_line(e, json_)); }
  void on_output(const msg::JobOutput& o) override {
    if (follow_output_) put(output_line(o, clock_.wall_ms(), json_));
  }
  void on_interrupted(std::string_view why) override { put(interrupted_line(why, clock_.wall_ms(), json_)); }

 private:
  void put(const std::string& line) {
    std::fputs(line.c_str(), out_);
    std::fflush(out_);  // scripts read it through a pipe, line by line
  }
  Clock& clock_;
  bool json_, follow_output_;
  std::FILE* out_;
};

}  // namespace

void install_stop_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: the poll returns at once
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

NetFeedSource::~NetFeedSource() = default;

int NetFeedSource::start(std::vector<uint64_t> follow, bool all_output) {
  cli::Dispatcher d;
  if (auto stop = o_.conn.resolve(kProgram, &d)) return *stop;
  feed_ = std::make_unique<net::Feed>(ctx_, net::FeedOptions{d.endpoint, d.server_key, d.secret_key,
                                                             std::move(follow), all_output},
                                      clock_);
  feed_->start();
  return 0;
}

void NetFeedSource::run_for(Millis most, net::FeedHandler& h) {
  zmq::pollitem_t item{feed_->socket().handle(), 0, ZMQ_POLLIN, 0};
  try {
    zmq::poll(&item, 1, std::min(most, feed_->wait()));
  } catch (const zmq::error_t&) {  // EINTR: a signal; the caller looks at its flag
    return;
  }
  feed_->process(h);
  if (feed_->wait() <= Millis(0)) feed_->tick(h);
}

void NetFeedSource::stop() {
  if (feed_) feed_->stop();
}

int events(FeedSource& f, Clock& clock, bool json, bool follow_output, std::FILE* out,
           const std::atomic<bool>& stop) {
  if (int rc = f.start({}, follow_output)) return rc;
  Printer p(clock, json, follow_output, out);
  while (!stop) f.run_for(kStopCheck, p);
  f.stop();
  return 0;
}

}  // namespace simpleci::client
