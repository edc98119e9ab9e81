// The subscriber's side of the event feed against a ROUTER the test plays the dispatcher with
// (inproc), and a FakeClock for the silences and backoffs.
#include "net/feed.h"

#include <gtest/gtest.h>

#include "net/transport.h"

namespace simpleci::net {
namespace {

using namespace std::chrono_literals;

// What the feed handed on, one line per call.
struct Recorder : FeedHandler {
  std::vector<std::string> seen;
  void on_snapshot(const msg::Snapshot& s) override { seen.push_back("snapshot " + std::to_string(s.seq)); }
  void on_event(const msg::Event& e) override { seen.push_back("event " + std::to_string(e.seq)); }
  void on_output(const msg::JobOutput& o) override {
    seen.push_back("output " + std::to_string(o.job_id) + "@" + std::to_string(o.offset) + " " + o.data);
  }
  void on_interrupted(std::string_view why) override { seen.push_back("interrupted: " + std::string(why)); }
};

// One message the dispatcher received, and from whom.
struct Got {
  std::string peer;
  msg::Message message;
};

class FeedTest : public ::testing::Test {
 protected:
  static constexpr const char* kEndpoint = "inproc://feed-test";

  void SetUp() override {
    router_ = make_router(ctx_);
    router_.bind(kEndpoint);
    feed_ = std::make_unique<Feed>(ctx_, FeedOptions{kEndpoint, "", "", {7}, false}, clock_);
    feed_->start();
  }

  // The next message the dispatcher receives (waits up to 2 s for it).
  Got receive() {
    zmq::pollitem_t item{router_.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, 2000ms);
    auto r = recv(router_, true, 3);
    EXPECT_TRUE(r.has_value()) << "the feed sent nothing";
    if (!r) return {};
    msg::Decoded d = decode_frames(*r, 1);
    EXPECT_TRUE(d.ok()) << d.detail;
    return {std::string(view(r->frames[0])), std::move(d.message)};
  }
  // Expects a SUBSCRIBE and remembers who sent it; returns its request id.
  uint64_t expect_subscribe(std::vector<uint64_t> follow = {7}) {
    Got g = receive();
    const auto* s = std::get_if<msg::Subscribe>(&g.message);
    EXPECT_NE(s, nullptr) << "not a SUBSCRIBE";
    if (!s) return 0;
    EXPECT_EQ(s->follow, follow);
    peer_ = g.peer;
    return s->request_id;
  }
  bool nothing_sent() {
    zmq::pollitem_t item{router_.handle(), 0, ZMQ_POLLIN, 0};
    return zmq::poll(&item, 1, 50ms) == 0;
  }

  void send(const msg::Message& m) { ASSERT_TRUE(send_to(router_, peer_, m)); }
  void send_raw(const std::string& body) {
    router_.send(zmq::buffer(peer_), zmq::send_flags::sndmore);
    router_.send(zmq::buffer(msg::header_frame()), zmq::send_flags::sndmore);
    router_.send(zmq::buffer(body));
  }
  // Lets the feed read what the dispatcher sent (waits for it to arrive, up to 2 s).
  void pump() {
    zmq::pollitem_t item{feed_->socket().handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, 2000ms);
    feed_->process(rec_);
  }
  // Until the feed has handed on n things (inproc delivers at once; a few rounds at most).
  void pump_until(size_t n) {
    for (int i = 0; i < 20 && rec_.seen.size() < n; ++i) pump();
  }
  void snapshot(uint64_t request_id, uint64_t seq, uint64_t feed = 5) {
    msg::Snapshot s;
    s.request_id = request_id;
    s.feed = feed;
    s.seq = seq;
    send(s);
  }
  static msg::Event event(uint64_t seq, msg::EventKind kind = msg::EventKind::kJobQueued, uint64_t feed = 5) {
    msg::Event e;
    e.feed = feed;
    e.seq = seq;
    e.kind = static_cast<uint32_t>(kind);
    e.at_ms = 1'767'225'600'000;
    return e;
  }
  // Subscribed and in step at seq.
  void in_step(uint64_t seq) {
    snapshot(expect_subscribe(), seq);
    pump();
    ASSERT_TRUE(feed_->in_step());
    rec_.seen.clear();
  }
  void advance(Millis d) {
    clock_.advance(d);
    feed_->tick(rec_);
  }

  zmq::context_t ctx_{1};
  zmq::socket_t router_;
  FakeClock clock_;
  std::unique_ptr<Feed> feed_;
  Recorder rec_;
  std::string peer_;
};

TEST_F(FeedTest, SnapshotThenEventsInOrder) {
  const uint64_t id = expect_subscribe();
  EXPECT_FALSE(feed_->in_step());
  send(event(3));  // before the snapshot: covered by it
  snapshot(id, 4);
  send(event(5));
  send(msg::JobOutput{5, 7, 1, 0, "hello"});
  send(event(5, msg::EventKind::kKeepalive));
  send(event(6));
  pump_until(4);
  EXPECT_EQ(rec_.seen, (std::vector<std::string>{"snapshot 4", "event 5", "output 7@0 hello", "event 6"}));
  EXPECT_TRUE(feed_->in_step());
  EXPECT_EQ(feed_->feed_id(), 5u);
  EXPECT_EQ(feed_->last_seq(), 6u);
}

TEST_F(FeedTest, AnUnansweredSubscribeIsSentAgainAfterTwoSeconds) {
  const uint64_t id = expect_subscribe();
  advance(1900ms);
  EXPECT_TRUE(nothing_sent());
  advance(100ms);
  EXPECT_EQ(expect_subscribe(), id);  // the same request: either snapshot will do
}

TEST_F(FeedTest, AGapInSeqResubscribes) {
  in_step(4);
  send(event(5));
  send(event(8));
  pump_until(2);
  EXPECT_EQ(rec_.seen, (std::vector<std::string>{"event 5", "interrupted: missed events 6..7"}));
  EXPECT_FALSE(feed_->in_step());
  const uint64_t id = expect_subscribe();
  send(event(9));  // before the new snapshot: dropped
  snapshot(id, 9);
  pump();
  EXPECT_EQ(rec_.seen.back(), "snapshot 9");
}

TEST_F(FeedTest, AKeepaliveAheadOfTheLastEventIsAGap) {
  in_step(4);
  send(event(6, msg::EventKind::kKeepalive));
  pump();
  EXPECT_EQ(rec_.seen, (std::vector<std::string>{"interrupted: missed events 5..6"}));
  expect_subscribe();
}

TEST_F(FeedTest, AnotherFeedIdResubscribes) {
  in_step(4);
  send(event(5, msg::EventKind::kJobQueued, 6));
  pump();
  EXPECT_EQ(rec_.seen, (std::vector<std::string>{"interrupted: dispatcher restarted"}));
  const uint64_t id = expect_subscribe();
  snapshot(id, 1, 6);
  pump();
  EXPECT_EQ(feed_->feed_id(), 6u);
  EXPECT_EQ(feed_->last_seq(), 1u);
}

TEST_F(FeedTest, DroppedResubscribesOnTheSameSocket) {
  in_step(4);
  const std::string first = peer_;
  send(event(4, msg::EventKind::kDropped));
  pump();
  EXPECT_EQ(rec_.seen, (std::vector<std::string>{"interrupted: dropped by the dispatcher"}));
  expect_subscribe();
  EXPECT_EQ(peer_, first);
}

TEST_F(FeedTest, SilenceOpensANewSocketWithBackoff) {
  in_step(4);
  const std::string first = peer_;
  advance(Millis(msg::kFeedSilenceMs - 1));
  EXPECT_TRUE(nothing_sent());
  EXPECT_TRUE(rec_.seen.empty());
  advance(1ms);
  EXPECT_EQ(rec_.seen, (std::vector<std::string>{"interrupted: no word from the dispatcher for 15 s"}));
  expect_subscribe();
  EXPECT_NE(peer_, first);
  // Nothing answers: the next sockets come 1 s, then 2 s later.
  const std::string second = peer_;
  advance(999ms);
  EXPECT_TRUE(nothing_sent());
  advance(1ms);
  const uint64_t id = expect_subscribe();
  EXPECT_NE(peer_, second);
  const std::string third = peer_;
  advance(1999ms);
  EXPECT_TRUE(nothing_sent());
  advance(1ms);
  const uint64_t id4 = expect_subscribe();
  EXPECT_NE(peer_, third);
  const std::string fourth = peer_;
  advance(2000ms);  // the socket's own 2 s re-send, before its 4 s are up
  EXPECT_EQ(expect_subscribe(), id4);
  EXPECT_EQ(peer_, fourth);
  advance(2000ms);
  const uint64_t id5 = expect_subscribe();
  EXPECT_NE(peer_, fourth);
  EXPECT_EQ(rec_.seen.size(), 1u);  // one interruption, however long it lasts
  snapshot(id, 4);  // an older request's: not taken
  pump();
  EXPECT_FALSE(feed_->in_step());
  snapshot(id5, 4);
  pump();
  EXPECT_TRUE(feed_->in_step());
  EXPECT_EQ(feed_->wait(), Millis(msg::kFeedSilenceMs));
}

TEST_F(FeedTest, BusyIsRetriedAfterTheBackoff) {
  const uint64_t id = expect_subscribe();
  send(msg::Error{id, msg::ErrorCode::kBusy, "too many subscribers"});
  pump();
  EXPECT_EQ(rec_.seen, (std::vector<std::string>{"interrupted: dispatcher: too many subscribers"}));
  EXPECT_EQ(feed_->wait(), 1000ms);
  advance(999ms);
  EXPECT_TRUE(nothing_sent());
  advance(1ms);
  EXPECT_EQ(expect_subscribe(), id);
  send(msg::Error{id, msg::ErrorCode::kBusy, "too many subscribers"});
  pump();
  EXPECT_EQ(feed_->wait(), 2000ms);  // doubled
}

TEST_F(FeedTest, FollowSendsSubscribeWithTheNewSet) {
  in_step(4);
  feed_->follow({7, 9});
  EXPECT_FALSE(feed_->in_step());
  const uint64_t id = expect_subscribe({7, 9});
  snapshot(id, 4);
  pump();
  EXPECT_EQ(rec_.seen, (std::vector<std::string>{"snapshot 4"}));
}

TEST_F(FeedTest, AFrameThatDoesNotDecodeIsIgnored) {
  in_step(4);
  send_raw(std::string("\xdd\xff\xff\xff\xff", 5));
  send_raw("not msgpack at all");
  send(event(5));
  pump_until(1);
  EXPECT_EQ(rec_.seen, (std::vector<std::string>{"event 5"}));
  EXPECT_TRUE(feed_->in_step());
}

TEST_F(FeedTest, StopSendsUnsubscribe) {
  in_step(4);
  feed_->stop();
  Got g = receive();
  EXPECT_TRUE(std::holds_alternative<msg::Unsubscribe>(g.message));
}

}  // namespace
}  // namespace simpleci::net
