// The event feed (PROTOCOL.md "Events"): SUBSCRIBE's snapshot, the events of state changes in
// order with consecutive seq, forwarded output, keepalives, the byte budget, the bound on
// subscribers, UNSUBSCRIBE, and subscribers whose connection is gone. Subscribers alone first,
// then through the Dispatcher with a recording outbox and a FakeClock.
#include "dispatcher/subscribers.h"
#include "tests/dispatcher/faulty_store.h"
#include "tests/dispatcher/fixture.h"

namespace simpleci::dispatcher {
namespace {

using msg::EventKind;
using msg::JobStatus;

// ---- Subscribers ----------------------------------------------------------------------------

class SubscribersTest : public ::testing::Test {
 protected:
  std::map<std::string, size_t, std::less<>> in_flight;
  Subscribers subs{42, [this](std::string_view p) {
                     auto it = in_flight.find(p);
                     return it == in_flight.end() ? size_t{0} : it->second;
                   },
                   1000, 2};
  SteadyTime t0 = SteadyTime(std::chrono::hours(1));
};

TEST_F(SubscribersTest, AMessageThatWouldPassTheBudgetDropsTheSubscriberCountingThisRound) {
  subs.subscribe("a", {}, false, t0);
  subs.subscribe("b", {}, false, t0);
  in_flight["a"] = 700;
  EXPECT_EQ(subs.event(300).to, (std::vector<std::string>{"a", "b"}));  // a: 1000, at the budget
  // Nothing more was handed over, but a's 300 queued this round count.
  const auto f = subs.event(1);
  EXPECT_EQ(f.to, std::vector<std::string>{"b"});
  EXPECT_EQ(f.dropped, std::vector<std::string>{"a"});
  EXPECT_FALSE(subs.contains("a"));
  EXPECT_EQ(subs.size(), 1u);
}

TEST_F(SubscribersTest, OnceTheRoundIsHandedOverOnlyTheTransportsCountHolds) {
  subs.subscribe("a", {}, false, t0);
  for (int i = 0; i < 9; ++i) EXPECT_EQ(subs.event(100).to.size(), 1u);
  subs.round_sent();
  in_flight["a"] = 0;  // the peer read it all
  for (int i = 0; i < 10; ++i) EXPECT_EQ(subs.event(100).to.size(), 1u);
  EXPECT_EQ(subs.event(1).dropped.size(), 1u);
}

TEST_F(SubscribersTest, OutputGoesToFollowersAndToThoseWhoWantAll) {
  subs.subscribe("follows7", {7}, false, t0);
  subs.subscribe("all", {}, true, t0);
  EXPECT_EQ(subs.output(7, 10).to, (std::vector<std::string>{"all", "follows7"}));
  EXPECT_EQ(subs.output(8, 10).to, std::vector<std::string>{"all"});
  // A new SUBSCRIBE replaces what is followed.
  EXPECT_EQ(subs.subscribe("follows7", {8}, false, t0), Subscribers::Subscribed::kRenewed);
  EXPECT_EQ(subs.output(7, 10).to, std::vector<std::string>{"all"});
}

TEST_F(SubscribersTest, AtMostMaxSubscribersAndARenewalAlwaysFits) {
  EXPECT_EQ(subs.subscribe("a", {}, false, t0), Subscribers::Subscribed::kNew);
  EXPECT_EQ(subs.subscribe("b", {}, false, t0), Subscribers::Subscribed::kNew);
  EXPECT_EQ(subs.subscribe("c", {}, false, t0), Subscribers::Subscribed::kFull);
  EXPECT_EQ(subs.subscribe("b", {1}, true, t0), Subscribers::Subscribed::kRenewed);
  EXPECT_TRUE(subs.remove("a"));
  EXPECT_FALSE(subs.remove("a"));
  EXPECT_EQ(subs.subscribe("c", {}, false, t0), Subscribers::Subscribed::kNew);
}

TEST_F(SubscribersTest, AKeepaliveIsDueEveryIntervalWhileAnyoneSubscribes) {
  EXPECT_FALSE(subs.keepalive_due(t0));
  subs.subscribe("a", {}, false, t0);
  EXPECT_FALSE(subs.keepalive_due(t0 + Millis(msg::kFeedKeepaliveMs - 1)));
  EXPECT_TRUE(subs.keepalive_due(t0 + Millis(msg::kFeedKeepaliveMs)));
  EXPECT_FALSE(subs.keepalive_due(t0 + Millis(msg::kFeedKeepaliveMs + 1)));
  EXPECT_TRUE(subs.keepalive_due(t0 + Millis(2 * msg::kFeedKeepaliveMs)));
}

TEST(FeedId, IsNeverZeroAndStaysExactInJson) {
  for (int i = 0; i < 100; ++i) {
    const uint64_t id = random_feed_id();
    EXPECT_NE(id, 0u);
    EXPECT_LT(id, uint64_t{1} << 53);
  }
}

// ---- Through the Dispatcher -----------------------------------------------------------------

class FeedTest : public DispatcherTest {
 protected:
  msg::Snapshot subscribe(const std::string& peer, std::vector<uint64_t> follow = {},
                          bool all_output = false) {
    deliver(peer, msg::Subscribe{++request_, std::move(follow), all_output});
    auto s = out_.take<msg::Snapshot>(peer);
    EXPECT_EQ(s.size(), 1u) << peer;
    if (s.empty()) return {};
    EXPECT_EQ(s[0].request_id, request_);
    return s[0];
  }
  std::vector<msg::Event> events(const std::string& peer) { return out_.take<msg::Event>(peer); }
  static std::vector<EventKind> kinds(const std::vector<msg::Event>& es) {
    std::vector<EventKind> k;
    for (const auto& e : es) k.push_back(static_cast<EventKind>(e.kind));
    return k;
  }
  // Without the keepalives.
  static std::vector<msg::Event> news(std::vector<msg::Event> es) {
    std::erase_if(es, [](const msg::Event& e) { return e.kind == uint32_t(EventKind::kKeepalive); });
    return es;
  }
  // A message handled without ending the round.
  void queue(const std::string& peer, const msg::Message& m) {
    const std::string h = msg::header_frame(), b = msg::encode(m);
    const std::vector<std::string_view> frames = {h, b};
    d_->on_message(peer, -1, frames);
  }
  msg::Job start_job(const std::string& runner, int n) {
    submit("obs", n);
    auto jobs = out_.take<msg::Job>(runner);
    EXPECT_EQ(jobs.size(), 1u);
    return jobs.empty() ? msg::Job{} : jobs[0];
  }
  uint64_t status_counter(const std::string& name) {
    deliver("cli", msg::StatusRequest{99});
    auto rep = out_.take<msg::StatusReply>("cli");
    EXPECT_EQ(rep.size(), 1u);
    for (const auto& c : rep.at(0).counters) {
      if (c.name == name) return c.value;
    }
    return 0;
  }
  uint64_t request_ = 0;
};

// A round's events reach each subscriber as one message, encoded once for all of them: the
// feed's cost grows with rounds x subscribers, not events x subscribers.
TEST_F(FeedTest, ARoundsEventsAreOneMessagePerSubscriberEncodedOnce) {
  add_runner("r1");
  const std::vector<std::string> subs = {"s1", "s2", "s3", "s4", "s5"};
  for (const auto& s : subs) subscribe(s);
  out_.batches.clear();
  out_.bodies.clear();
  for (int n = 1; n <= 30; ++n) queue("obs", msg::Commit{uint64_t(n), commit_id(n), "main", false});
  flush();
  EXPECT_EQ(out_.bodies.size(), 1u);
  for (const auto& s : subs) {
    EXPECT_EQ(out_.batches[s], 1u) << s;
    const auto es = events(s);
    // 30 queued, then the first one started.
    ASSERT_EQ(es.size(), 31u) << s;
    for (size_t i = 1; i < es.size(); ++i) EXPECT_EQ(es[i].seq, es[i - 1].seq + 1) << s;
    EXPECT_EQ(es.back().kind, uint32_t(EventKind::kJobStarted));
  }
}

// A SUBSCRIBE in the middle of a round: its SNAPSHOT covers the round's events so far, and only
// the later ones follow it.
TEST_F(FeedTest, ASubscribeInTheMiddleOfARoundGetsOnlyTheEventsAfterItsSnapshot) {
  subscribe("early");
  queue("obs", msg::Commit{1, commit_id(1), "main", false});
  queue("late", msg::Subscribe{++request_, {}, false});
  queue("obs", msg::Commit{2, commit_id(2), "main", false});
  flush();
  const auto snap = out_.take<msg::Snapshot>("late");
  ASSERT_EQ(snap.size(), 1u);
  EXPECT_EQ(snap[0].queue_length, 1u);
  const auto late = events("late");
  ASSERT_EQ(late.size(), 1u);
  EXPECT_EQ(late[0].seq, snap[0].seq + 1);
  EXPECT_EQ(late[0].jobs.at(0).commit, commit_id(2));
  EXPECT_EQ(events("early").size(), 2u);
}

TEST_F(FeedTest, ASnapshotThenTheEventsOfACommitInOrderWithConsecutiveSeq) {
  add_runner("r1");
  const msg::Snapshot snap = subscribe("sub");
  EXPECT_NE(snap.feed, 0u);
  EXPECT_EQ(snap.seq, 0u);
  ASSERT_EQ(snap.runners.size(), 1u);
  EXPECT_EQ(snap.runners[0].state, "idle");
  EXPECT_EQ(snap.queue_length, 0u);

  const msg::Job job = start_job("r1", 1);
  deliver("r1", result_for(job));
  const auto es = events("sub");
  ASSERT_EQ(kinds(es), (std::vector<EventKind>{EventKind::kJobQueued, EventKind::kJobStarted,
                                               EventKind::kJobFinished, EventKind::kRunnerChanged}));
  for (size_t i = 0; i < es.size(); ++i) {
    EXPECT_EQ(es[i].feed, snap.feed);
    EXPECT_EQ(es[i].seq, snap.seq + i + 1);
    EXPECT_EQ(es[i].at_ms, clock_.wall_ms());
  }
  const msg::JobSummary& queued = es[0].jobs.at(0);
  EXPECT_EQ(queued.job_id, job.job_id);
  EXPECT_EQ(queued.commit, commit_id(1));
  EXPECT_EQ(queued.branch, "main");
  EXPECT_EQ(queued.status, JobStatus::kQueued);
  EXPECT_EQ(queued.attempt, 0u);
  EXPECT_EQ(es[0].queue_length, 1u);

  const msg::JobSummary& started = es[1].jobs.at(0);
  EXPECT_EQ(started.status, JobStatus::kRunning);
  EXPECT_EQ(started.runner, "r1");
  EXPECT_EQ(started.attempt, 1u);
  EXPECT_EQ(es[1].queue_length, 0u);
  ASSERT_EQ(es[1].runners.size(), 1u);
  EXPECT_EQ(es[1].runners[0].state, "busy");
  EXPECT_EQ(es[1].runners[0].jobs, std::vector<uint64_t>{job.job_id});

  const msg::JobSummary& finished = es[2].jobs.at(0);
  EXPECT_EQ(finished.status, JobStatus::kPassed);
  EXPECT_EQ(finished.exit_code, 0);
  EXPECT_EQ(finished.duration_ms, 5);
  EXPECT_TRUE(es[2].runners.empty());
  EXPECT_EQ(es[3].runners.at(0).state, "idle");
  EXPECT_TRUE(es[3].jobs.empty());
}

TEST_F(FeedTest, ALostRunnerLeavesAndItsJobIsRequeuedForTheNextAttempt) {
  add_runner("r1");
  const msg::Job job = start_job("r1", 1);
  const uint64_t seq = subscribe("sub").seq;
  advance(3 * cfg_.heartbeat_ms);  // r1 silent for 3 intervals
  auto es = events("sub");
  ASSERT_EQ(kinds(es), (std::vector<EventKind>{EventKind::kRunnerLeft, EventKind::kJobRequeued}));
  EXPECT_EQ(es[0].seq, seq + 1);
  EXPECT_EQ(es[0].runners.at(0).name, "r1");
  const msg::JobSummary& j = es[1].jobs.at(0);
  EXPECT_EQ(j.job_id, job.job_id);
  EXPECT_EQ(j.status, JobStatus::kQueued);
  EXPECT_EQ(j.attempt, 2u) << "the attempt to come";
  EXPECT_EQ(j.runner, "");
  EXPECT_EQ(es[1].queue_length, 1u);

  add_runner("r2");
  es = events("sub");
  ASSERT_EQ(kinds(es), (std::vector<EventKind>{EventKind::kRunnerJoined, EventKind::kJobStarted}));
  EXPECT_EQ(es[1].jobs.at(0).attempt, 2u);
  EXPECT_EQ(es[1].jobs.at(0).runner, "r2");
  EXPECT_EQ(es[1].seq, seq + 4);
}

TEST_F(FeedTest, RunnersJoinChangeAndLeave) {
  subscribe("sub");
  add_runner("r1", 2);
  deliver("r1", msg::Drain{});
  d_->on_disconnect(7);  // no runner on that connection: nothing happens
  advance(3 * cfg_.heartbeat_ms);
  const auto es = events("sub");
  ASSERT_EQ(kinds(es), (std::vector<EventKind>{EventKind::kRunnerJoined, EventKind::kRunnerChanged,
                                               EventKind::kRunnerLeft}));
  EXPECT_EQ(es[0].runners.at(0).name, "r1");
  EXPECT_EQ(es[0].runners.at(0).capacity, 2u);
  EXPECT_EQ(es[0].runners.at(0).state, "idle");
  EXPECT_EQ(es[1].runners.at(0).state, "draining");
  EXPECT_EQ(es[2].runners.at(0).name, "r1");
}

TEST_F(FeedTest, SetupFailuresPauseTheRunnerAndTheEndOfThePauseIsTold) {
  add_runner("r1");
  msg::Job job = start_job("r1", 1);
  subscribe("sub");
  for (int i = 0; i < 2; ++i) {
    msg::Result r = result_for(job, JobStatus::kError);
    r.exit_code = msg::kExitSetupFailed;
    deliver("r1", r);
    if (i == 0) job = out_.take<msg::Job>("r1").at(0);  // the only runner gets it again
  }
  auto es = events("sub");
  ASSERT_EQ(es.size(), 5u) << "requeued, r1 changed, started again, requeued, r1 changed";
  EXPECT_EQ(es[3].jobs.at(0).attempt, 3u);
  EXPECT_EQ(es[4].runners.at(0).state, "paused");
  pass_time(30000, {"r1"});
  es = news(events("sub"));
  ASSERT_EQ(kinds(es), (std::vector<EventKind>{EventKind::kRunnerChanged, EventKind::kJobStarted}));
  EXPECT_EQ(es[0].runners.at(0).state, "idle");
  EXPECT_EQ(es[1].jobs.at(0).attempt, 3u);
}

TEST_F(FeedTest, ACancelledJobFinishesAsCancelled) {
  const uint64_t id = submit("obs", 1);
  subscribe("sub");
  deliver("admin", msg::CancelRequest{5, id});
  const auto es = events("sub");
  ASSERT_EQ(kinds(es), std::vector<EventKind>{EventKind::kJobFinished});
  EXPECT_EQ(es[0].jobs.at(0).status, JobStatus::kCancelled);
  EXPECT_EQ(es[0].queue_length, 0u);
}

TEST_F(FeedTest, OutputGoesToFollowersAndAllOutputNeverToOthers) {
  add_runner("r1");
  const msg::Job j1 = start_job("r1", 1);
  add_runner("r2");
  const msg::Job j2 = start_job("r2", 2);
  const uint64_t feed = subscribe("follows1", {j1.job_id}).feed;
  subscribe("all", {}, true);
  subscribe("none");
  deliver("r1", msg::Output{j1.job_id, 1, 0, "one\n"});
  deliver("r2", msg::Output{j2.job_id, 1, 0, "two\n"});
  deliver("r1", msg::Output{j1.job_id, 1, 4, "more\n"});

  const auto f = out_.take<msg::JobOutput>("follows1");
  ASSERT_EQ(f.size(), 2u);
  EXPECT_EQ(f[0], (msg::JobOutput{feed, j1.job_id, 1, 0, "one\n"}));
  EXPECT_EQ(f[1], (msg::JobOutput{feed, j1.job_id, 1, 4, "more\n"}));
  const auto all = out_.take<msg::JobOutput>("all");
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[1].job_id, j2.job_id);
  EXPECT_TRUE(out_.take<msg::JobOutput>("none").empty());
  // A stale chunk (an attempt that is not current) is forwarded to nobody.
  deliver("r1", msg::Output{j1.job_id, 2, 0, "stale\n"});
  EXPECT_TRUE(out_.take<msg::JobOutput>("all").empty());
}

TEST_F(FeedTest, ASecondSubscribeReplacesTheFollowedJobsWithANewSnapshotAtTheCurrentSeq) {
  add_runner("r1", 2);
  const msg::Job j1 = start_job("r1", 1);
  const msg::Snapshot first = subscribe("sub", {j1.job_id});
  const msg::Job j2 = start_job("r1", 2);
  const auto es = events("sub");
  ASSERT_EQ(es.size(), 2u);
  const msg::Snapshot second = subscribe("sub", {j2.job_id});
  EXPECT_EQ(second.feed, first.feed);
  EXPECT_EQ(second.seq, es.back().seq);
  EXPECT_EQ(second.seq, first.seq + 2);
  ASSERT_EQ(second.running.size(), 2u);
  EXPECT_EQ(second.running[0].job_id, j1.job_id);
  EXPECT_EQ(second.runners.at(0).jobs.size(), 2u);
  EXPECT_EQ(d_->subscriber_count(), 1u);

  deliver("r1", msg::Output{j1.job_id, 1, 0, "one\n"});
  deliver("r1", msg::Output{j2.job_id, 1, 0, "two\n"});
  const auto out = out_.take<msg::JobOutput>("sub");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].job_id, j2.job_id);
  deliver("r1", result_for(j1));
  EXPECT_EQ(events("sub").at(0).seq, second.seq + 1) << "the events go on";
}

TEST_F(FeedTest, TheSnapshotListsTheQueueInStartOrderAndTheRunningJobs) {
  add_runner("r1");
  const msg::Job running = start_job("r1", 1);
  for (int n = 2; n <= 4; ++n) submit("obs", n);
  const msg::Snapshot s = subscribe("sub");
  EXPECT_EQ(s.queue_length, 3u);
  ASSERT_EQ(s.queued.size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(s.queued[i].commit, commit_id(i + 2));
  ASSERT_EQ(s.running.size(), 1u);
  EXPECT_EQ(s.running[0].job_id, running.job_id);
  EXPECT_EQ(s.running[0].status, JobStatus::kRunning);
}

TEST_F(FeedTest, AKeepaliveComesEveryIntervalWithTheNewestSeqAndNothingElse) {
  const msg::Snapshot snap = subscribe("sub");
  submit("obs", 1);
  ASSERT_EQ(events("sub").size(), 1u);
  advance(msg::kFeedKeepaliveMs - 1);
  EXPECT_TRUE(events("sub").empty());
  advance(1);
  auto es = events("sub");
  ASSERT_EQ(kinds(es), std::vector<EventKind>{EventKind::kKeepalive});
  EXPECT_EQ(es[0].seq, snap.seq + 1) << "the newest event's seq, repeated";
  EXPECT_TRUE(es[0].jobs.empty());
  EXPECT_TRUE(es[0].runners.empty());
  advance(msg::kFeedKeepaliveMs);
  EXPECT_EQ(kinds(events("sub")), std::vector<EventKind>{EventKind::kKeepalive});
}

// Streams 64 KiB chunks of job's output until the deaf subscriber is dropped (or `most` chunks).
class FeedBudgetTest : public FeedTest {
 protected:
  void SetUp() override {
    FeedTest::SetUp();
    out_.deaf.insert("deaf");
    add_runner("r1");
    job_ = start_job("r1", 1);
    subscribe("deaf", {}, true);
  }
  msg::Output chunk(uint64_t i) {
    return msg::Output{job_.job_id, 1, i * msg::kMaxChunkBytes, std::string(msg::kMaxChunkBytes, 'x')};
  }
  // The messages deaf was sent, in order.
  std::vector<msg::Message> sent_to_deaf() {
    std::vector<msg::Message> out;
    for (const auto& [p, m] : out_.sent) {
      if (p == "deaf") out.push_back(m);
    }
    return out;
  }
  void expect_dropped_once_and_nothing_after() {
    const auto sent = sent_to_deaf();
    ASSERT_FALSE(sent.empty());
    ASSERT_TRUE(std::holds_alternative<msg::Event>(sent.back()));
    EXPECT_EQ(std::get<msg::Event>(sent.back()).kind, uint32_t(EventKind::kDropped));
    size_t dropped = 0;
    for (const auto& m : sent) {
      dropped += std::holds_alternative<msg::Event>(m) &&
                 std::get<msg::Event>(m).kind == uint32_t(EventKind::kDropped);
    }
    EXPECT_EQ(dropped, 1u);
    // What the transport holds for it stays within the budget, plus the EVENT dropped.
    EXPECT_LE(out_.unread["deaf"], msg::kFeedBudgetBytes + 64);
    EXPECT_GT(out_.unread["deaf"], msg::kFeedBudgetBytes - msg::kMaxChunkBytes - 128);
    EXPECT_EQ(d_->subscriber_count(), 0u);
    EXPECT_EQ(status_counter("feed.dropped"), 1u);
    // Nothing more: neither output nor events nor keepalives.
    const size_t before = sent.size();
    deliver("r1", chunk(100000));
    deliver("r1", result_for(job_));
    advance(msg::kFeedKeepaliveMs);
    EXPECT_EQ(sent_to_deaf().size(), before);
  }
  msg::Job job_;
};

TEST_F(FeedBudgetTest, ASubscriberThatNeverReadsGetsOneDroppedAndNothingMore) {
  uint64_t i = 0;
  for (; i < 1000 && d_->subscriber_count() == 1; ++i) deliver("r1", chunk(i));
  EXPECT_LT(i, 200u) << "8 MiB is 128 chunks";
  expect_dropped_once_and_nothing_after();
}

TEST_F(FeedBudgetTest, WhatOneRoundQueuesCountsBeforeItIsHandedOver) {
  const size_t snapshot = out_.unread["deaf"];
  for (uint64_t i = 0; i < 1000; ++i) queue("r1", chunk(i));
  EXPECT_EQ(d_->subscriber_count(), 0u) << "dropped before the round ended";
  EXPECT_EQ(out_.unread["deaf"], snapshot) << "nothing handed over yet";
  flush();
  expect_dropped_once_and_nothing_after();
}

TEST_F(FeedTest, SubscribesFasterThanTheSnapshotsAreReadAreBusyPastTheBudget) {
  out_.deaf.insert("deaf");
  for (int n = 1; n <= 1000; ++n) submit("obs", n);  // snapshots of ~100 KiB
  for (uint64_t i = 1; i <= 300; ++i) queue("deaf", msg::Subscribe{i, {}, false});
  flush();
  const size_t snapshots = out_.take<msg::Snapshot>("deaf").size();
  EXPECT_GT(snapshots, 10u);
  EXPECT_LT(snapshots, 300u);
  EXPECT_LE(out_.unread["deaf"], msg::kFeedBudgetBytes + 200 * 1024);
  const auto busy = out_.take<msg::Error>("deaf");
  EXPECT_EQ(busy.size(), 300 - snapshots);
  EXPECT_EQ(busy.at(0).code, msg::ErrorCode::kBusy);
  EXPECT_EQ(d_->subscriber_count(), 1u);
}

TEST_F(FeedTest, OneSubscriberTooManyIsBusy) {
  for (size_t i = 0; i < msg::kMaxSubscribers; ++i) subscribe("s" + std::to_string(i));
  deliver("late", msg::Subscribe{77, {}, false});
  auto err = out_.take<msg::Error>("late");
  ASSERT_EQ(err.size(), 1u);
  EXPECT_EQ(err[0].request_id, 77u);
  EXPECT_EQ(err[0].code, msg::ErrorCode::kBusy);
  EXPECT_EQ(err[0].text, "too many subscribers");
  EXPECT_TRUE(out_.take<msg::Snapshot>("late").empty());
  EXPECT_EQ(d_->subscriber_count(), msg::kMaxSubscribers);
  subscribe("s0", {1});  // a subscriber's renewal still fits
  submit("obs", 1);
  EXPECT_TRUE(events("late").empty());
  deliver("s0", msg::Unsubscribe{78});
  subscribe("late");
}

TEST_F(FeedTest, UnsubscribeIsAnsweredOkAndEndsTheEvents) {
  subscribe("sub");
  deliver("sub", msg::Unsubscribe{9});
  auto ok = out_.take<msg::Ok>("sub");
  ASSERT_EQ(ok.size(), 1u);
  EXPECT_EQ(ok[0].request_id, 9u);
  EXPECT_EQ(d_->subscriber_count(), 0u);
  submit("obs", 1);
  advance(msg::kFeedKeepaliveMs);
  EXPECT_TRUE(out_.sent.empty());
  deliver("sub", msg::Unsubscribe{10});  // again: still OK
  EXPECT_EQ(out_.take<msg::Ok>("sub").size(), 1u);
}

TEST_F(FeedTest, ASubscriberWhoseSendFailsIsForgotten) {
  subscribe("gone");
  subscribe("here");
  out_.gone.insert("gone");
  submit("obs", 1);
  EXPECT_EQ(d_->subscriber_count(), 1u);
  EXPECT_EQ(status_counter("feed.gone"), 1u);
  EXPECT_EQ(events("here").size(), 1u);
  // The keepalive finds one that left without a word the same way.
  out_.gone.insert("here");
  advance(msg::kFeedKeepaliveMs);
  EXPECT_EQ(d_->subscriber_count(), 0u);
  EXPECT_EQ(status_counter("feed.gone"), 2u);
}

TEST_F(FeedTest, WithoutSubscribersNothingIsSent) {
  add_runner("r1");
  deliver("r1", result_for(start_job("r1", 1)));
  advance(msg::kFeedKeepaliveMs);
  for (const auto& [peer, m] : out_.sent) {
    EXPECT_FALSE(std::holds_alternative<msg::Event>(m) || std::holds_alternative<msg::JobOutput>(m))
        << peer << " " << msg::to_string(msg::type_of(m));
  }
}

// A round whose commit fails loses its events: the subscriber sees a gap in seq.
class FeedStoreFailure : public FeedTest {
 protected:
  JobStore& dispatcher_store() override {
    faulty_.real = store_.get();
    return faulty_;
  }
  FaultyStore faulty_;
};

TEST_F(FeedStoreFailure, AFailedRoundSendsNoEventsAndTheNextShowsTheGap) {
  const uint64_t seq = subscribe("sub").seq;
  faulty_.fail_commit = true;
  // A SUBSCRIBE in a failed round may describe what was rolled back: it is told to retry.
  deliver("obs", msg::Commit{1, commit_id(1), "main", false});
  queue("sub2", msg::Subscribe{3, {}, false});
  deliver("obs", msg::Commit{2, commit_id(2), "main", false});
  EXPECT_TRUE(events("sub").empty());
  EXPECT_TRUE(out_.take<msg::Snapshot>("sub2").empty());
  EXPECT_EQ(out_.take<msg::Error>("sub2").at(0).code, msg::ErrorCode::kStorageFailure);
  faulty_.fail_commit = false;
  submit("obs", 3);
  const auto es = events("sub");
  ASSERT_EQ(es.size(), 1u);
  EXPECT_GT(es[0].seq, seq + 1) << "a gap: subscribe again";
  EXPECT_EQ(es[0].queue_length, 1u);
}

}  // namespace
}  // namespace simpleci::dispatcher
