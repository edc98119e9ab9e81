#include "net/reply_budget.h"

#include <gtest/gtest.h>

namespace simpleci::net {
namespace {

using namespace simpleci::msg;  // NOLINT: the message types under test

using Verdict = ReplyBudget::Verdict;

TEST(ReplyBudget, BytesCountUntilTheChargeIsReleased) {
  ReplyBudget b(ReplyLimits{1000, 10000, 100});
  EXPECT_EQ(b.admit("p", 600, false), Verdict::kSend);
  auto c1 = b.charge("p", 600, false);
  EXPECT_EQ(b.peer_bytes("p"), 600u);
  EXPECT_EQ(b.admit("p", 300, false), Verdict::kSend);
  auto c2 = b.charge("p", 300, false);
  EXPECT_EQ(b.admit("p", 200, false), Verdict::kOverBudget);
  EXPECT_EQ(b.admit("p", 200, false, true), Verdict::kSend);  // the slack for ERROR busy
  EXPECT_EQ(b.admit("q", 900, false), Verdict::kSend);        // other peers are not affected
  c1.reset();  // libzmq released the first reply
  EXPECT_EQ(b.peer_bytes("p"), 300u);
  EXPECT_EQ(b.admit("p", 600, false), Verdict::kSend);
  c2.reset();
  EXPECT_EQ(b.total_bytes(), 0u);
}

TEST(ReplyBudget, APeerWithNothingInFlightAlwaysGetsOneReply) {
  ReplyBudget b(ReplyLimits{1000, 10000, 100});
  EXPECT_EQ(b.admit("p", 5000, false), Verdict::kSend);
  auto c = b.charge("p", 5000, false);
  EXPECT_EQ(b.admit("p", 1, false), Verdict::kOverBudget);
}

TEST(ReplyBudget, TheTotalIsCappedAcrossPeers) {
  ReplyBudget b(ReplyLimits{1000, 1500, 100});
  auto c1 = b.charge("a", 800, false);
  auto c2 = b.charge("b", 600, false);
  EXPECT_EQ(b.admit("c", 200, false), Verdict::kOverBudget);
  EXPECT_EQ(b.admit("c", 150, false, true), Verdict::kSend);
  c1.reset();
  EXPECT_EQ(b.admit("c", 200, false), Verdict::kSend);
}

TEST(ReplyBudget, OneOutputReplyInFlightPerPeer) {
  ReplyBudget b;
  auto c = b.charge("p", 100, true);
  EXPECT_TRUE(b.output_in_flight("p"));
  EXPECT_EQ(b.admit("p", 100, true), Verdict::kOutputInFlight);
  EXPECT_EQ(b.admit("p", 100, false), Verdict::kSend);  // small replies still go
  EXPECT_EQ(b.admit("q", 100, true), Verdict::kSend);
  c.reset();
  EXPECT_FALSE(b.output_in_flight("p"));
  EXPECT_EQ(b.admit("p", 100, true), Verdict::kSend);
}

TEST(ReplyBudget, PeersWithNothingInFlightAreForgotten) {
  ReplyBudget b;
  std::vector<std::shared_ptr<ReplyBudget::Charge>> held;
  for (int i = 0; i < 10000; ++i) {
    auto c = b.charge("peer-" + std::to_string(i), 10, false);
    if (i % 1000 == 0) held.push_back(c);  // ten peers never read
  }
  EXPECT_LT(b.tracked_peers(), 200u);  // swept as the map grew
  b.sweep();
  EXPECT_EQ(b.tracked_peers(), 10u);
  EXPECT_EQ(b.total_bytes(), 100u);
  held.clear();
  b.sweep();
  EXPECT_EQ(b.tracked_peers(), 0u);
  EXPECT_EQ(b.total_bytes(), 0u);
}

// A charge may outlive the budget (libzmq releases a message after the loop ended).
TEST(ReplyBudget, AChargeOutlivesItsBudget) {
  std::shared_ptr<ReplyBudget::Charge> c;
  {
    ReplyBudget b;
    c = b.charge("p", 10, true);
  }
  c.reset();
}

TEST(ReplyBudget, WhichMessagesAreBudgetedAndCarryOutput) {
  EXPECT_TRUE(carries_output(ResultsReply{1, {}, "x"}));
  EXPECT_FALSE(carries_output(ResultsReply{1, {}, ""}));
  WatchReply w;
  w.data = "abc";
  EXPECT_TRUE(carries_output(w));
  EXPECT_FALSE(carries_output(WatchReply{}));
  EXPECT_FALSE(budgeted(Job{}));
  EXPECT_FALSE(budgeted(ResultAck{}));
  EXPECT_FALSE(budgeted(Heartbeat{}));
  EXPECT_TRUE(budgeted(StatusReply{}));
  EXPECT_TRUE(budgeted(Reregister{}));
  EXPECT_EQ(reply_request_id(Accepted{7, 1, false}), 7u);
  EXPECT_EQ(reply_request_id(Reregister{}), std::nullopt);
}

}  // namespace
}  // namespace simpleci::net
