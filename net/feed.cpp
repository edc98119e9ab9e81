#include "net/feed.h"

#include <algorithm>
#include <optional>

#include "net/dealer.h"
#include "net/transport.h"

namespace simpleci::net {

namespace {

// An unanswered SUBSCRIBE is sent again this often (the first may have gone to a socket that
// was still connecting, or to a dispatcher that restarted).
constexpr Millis kResubscribeAfter(2000);
// After a silence the socket is replaced again while nothing answers, this long apart, doubling.
constexpr Millis kFirstBackoff(1000);
constexpr Millis kLongestBackoff(32000);
// How long a closing socket may keep trying to deliver UNSUBSCRIBE.
constexpr int kUnsubscribeLingerMs = 200;

}  // namespace

struct Feed::State {
  zmq::context_t& ctx;
  FeedOptions opt;
  Clock& clock;
  std::optional<DealerConnection> conn;

  uint64_t request_id = 0;  // of the newest SUBSCRIBE; its re-sends carry the same id
  bool in_step = false;
  uint64_t feed = 0, seq = 0;

  // Timers. While out of step, SUBSCRIBE is re-sent at resend_at (ERROR pushes it back by the
  // backoff). Whatever the state, hearing nothing until reconnect_at replaces the socket.
  SteadyTime resend_at{}, reconnect_at{};
  Millis backoff = kFirstBackoff;

  State(zmq::context_t& c, FeedOptions o, Clock& k) : ctx(c), opt(std::move(o)), clock(k) {}

  void send_subscribe() {
    conn->send(msg::Subscribe{request_id, opt.follow, opt.all_output});
    resend_at = clock.now() + kResubscribeAfter;
  }

  // Starts over on the same socket: a new request id, so a late snapshot of the old one is
  // not taken for the new one.
  void resubscribe() {
    in_step = false;
    ++request_id;
    send_subscribe();
  }

  void heard() { reconnect_at = clock.now() + Millis(msg::kFeedSilenceMs); }

  void interrupt(FeedHandler& h, std::string_view why) {
    in_step = false;
    h.on_interrupted(why);
  }

  void take(FeedHandler& h, msg::Snapshot& s) {
    if (s.request_id != request_id || in_step) return;  // an older SUBSCRIBE's, or a re-send's twin
    in_step = true;
    feed = s.feed;
    seq = s.seq;
    backoff = kFirstBackoff;
    h.on_snapshot(s);
  }

  void take(FeedHandler& h, msg::Event& e) {
    if (!in_step) return;  // the coming snapshot covers it
    const auto kind = static_cast<msg::EventKind>(e.kind);
    if (e.feed != feed) {
      interrupt(h, "dispatcher restarted");
    } else if (kind == msg::EventKind::kDropped) {
      interrupt(h, "dropped by the dispatcher");
    } else if (e.seq > seq + (kind == msg::EventKind::kKeepalive ? 0 : 1)) {
      const uint64_t last = kind == msg::EventKind::kKeepalive ? e.seq : e.seq - 1;
      interrupt(h, "missed events " + std::to_string(seq + 1) + ".." + std::to_string(last));
    } else {
      if (kind == msg::EventKind::kKeepalive || e.seq <= seq) return;  // nothing new, or seen
      seq = e.seq;
      h.on_event(e);
      return;
    }
    resubscribe();
  }

  // One round's events: each as if it came alone (after a gap or a drop the rest wait for the
  // new snapshot).
  void take(FeedHandler& h, msg::Events& b) {
    for (msg::Event& e : b.events) take(h, e);
  }

  void take(FeedHandler& h, msg::JobOutput& o) {
    if (in_step && o.feed == feed) h.on_output(o);
  }

  void take(FeedHandler& h, msg::Error& e) {
    if (e.request_id != request_id || in_step) return;
    // busy (too many subscribers) or a dispatcher without the feed: ask again later.
    resend_at = clock.now() + backoff;
    backoff = std::min(backoff * 2, kLongestBackoff);
    h.on_interrupted("dispatcher: " + e.text);
  }

  template <class T>
  void take(FeedHandler&, T&) {}  // OK to UNSUBSCRIBE, or what a dispatcher never sends here
};

Feed::Feed(zmq::context_t& ctx, FeedOptions opt, Clock& clock)
    : s_(std::make_unique<State>(ctx, std::move(opt), clock)) {}

Feed::~Feed() = default;

void Feed::start() {
  s_->conn.emplace(s_->ctx, s_->opt.endpoint, s_->opt.server_key, s_->opt.secret_key);
  s_->heard();
  s_->resubscribe();
}

zmq::socket_t& Feed::socket() { return s_->conn->socket(); }

void Feed::process(FeedHandler& h) {
  while (auto r = recv(socket(), true, 2)) {
    msg::Decoded d = decode_frames(*r, 0);
    if (!d.ok()) continue;
    s_->heard();
    std::visit([&](auto& m) { s_->take(h, m); }, d.message);
  }
}

void Feed::tick(FeedHandler& h) {
  State& s = *s_;
  const SteadyTime now = s.clock.now();
  if (now >= s.reconnect_at) {
    // Silence: the dispatcher (or the way to it) is presumed gone. A new socket, and while
    // nothing answers, the next one after a longer wait.
    if (s.in_step) {
      s.interrupt(h, "no word from the dispatcher for " + std::to_string(msg::kFeedSilenceMs / 1000) + " s");
    }
    s.conn->reconnect();
    s.reconnect_at = now + s.backoff;
    s.backoff = std::min(s.backoff * 2, kLongestBackoff);
    s.resubscribe();
  } else if (!s.in_step && now >= s.resend_at) {
    s.send_subscribe();
  }
}

Millis Feed::wait() const {
  SteadyTime next = s_->reconnect_at;
  if (!s_->in_step) next = std::min(next, s_->resend_at);
  return std::max(Millis(0), std::chrono::ceil<Millis>(next - s_->clock.now()));
}

void Feed::follow(std::vector<uint64_t> jobs) {
  s_->opt.follow = std::move(jobs);
  if (s_->conn) s_->resubscribe();
}

void Feed::stop() {
  if (!s_->conn) return;
  s_->conn->send(msg::Unsubscribe{++s_->request_id});
  socket().set(zmq::sockopt::linger, kUnsubscribeLingerMs);
  s_->in_step = false;
}

bool Feed::in_step() const { return s_->in_step; }
uint64_t Feed::feed_id() const { return s_->feed; }
uint64_t Feed::last_seq() const { return s_->seq; }

}  // namespace simpleci::net
