// NOTIFY and the observers it wakes: who gets a WAKE, what the OK says, and how the set of
// observers stays small (expiry, bound).
#include "tests/dispatcher/fixture.h"

namespace simpleci::dispatcher {
namespace {

using NotifyTest = DispatcherTest;

TEST_F(NotifyTest, ANotifyWakesEveryObserverWithItsBranchesAndSaysHowMany) {
  deliver("obs1", msg::ObserverHello{});
  deliver("obs2", msg::ObserverHello{});
  deliver("obs1", msg::ObserverHello{});  // said twice: still one observer
  const std::vector<msg::BranchName> branches = {{"main"}, {"dev"}};
  deliver("hook", msg::Notify{5, branches});
  for (const char* o : {"obs1", "obs2"}) {
    auto w = out_.take<msg::Wake>(o);
    ASSERT_EQ(w.size(), 1u) << o;
    EXPECT_EQ(w[0].branches, branches);
  }
  auto ok = out_.take<msg::Ok>("hook");
  ASSERT_EQ(ok.size(), 1u);
  EXPECT_EQ(ok[0].request_id, 5u);
  EXPECT_EQ(ok[0].job_id, 2u);
  EXPECT_EQ(ok[0].text, "woke 2 observer(s)");
  EXPECT_EQ(d_->counter("observers.woken"), 2u);
  EXPECT_TRUE(out_.sent.empty()) << "nobody else hears of it";
}

TEST_F(NotifyTest, WithoutObserversTheNotifyIsStillAnswered) {
  deliver("hook", msg::Notify{6, {}});
  auto ok = out_.take<msg::Ok>("hook");
  ASSERT_EQ(ok.size(), 1u);
  EXPECT_EQ(ok[0].job_id, 0u);
}

TEST_F(NotifyTest, AnObserverSilentPastTheExpiryIsForgottenAHelloKeepsItKnown) {
  deliver("gone", msg::ObserverHello{});
  deliver("alive", msg::ObserverHello{});
  for (int t = 0; t <= msg::kObserverExpiryMs; t += msg::kObserverHelloMs / 2) {
    advance(msg::kObserverHelloMs / 2);
    deliver("alive", msg::ObserverHello{});
  }
  deliver("hook", msg::Notify{7, {}});
  EXPECT_TRUE(out_.take<msg::Wake>("gone").empty());
  EXPECT_EQ(out_.take<msg::Wake>("alive").size(), 1u);
  EXPECT_EQ(out_.take<msg::Ok>("hook").at(0).job_id, 1u);
}

TEST_F(NotifyTest, TheSetIsBoundedAndANewcomerPushesOutTheOldestHeard) {
  const size_t n = msg::kMaxObservers + 10;
  for (size_t i = 0; i < n; ++i) {
    deliver("o" + std::to_string(i), msg::ObserverHello{});
    clock_.advance(Millis(1));
  }
  deliver("hook", msg::Notify{8, {}});
  EXPECT_EQ(out_.take<msg::Ok>("hook").at(0).job_id, msg::kMaxObservers);
  for (size_t i = 0; i < 10; ++i) EXPECT_TRUE(out_.take<msg::Wake>("o" + std::to_string(i)).empty()) << i;
  EXPECT_EQ(out_.take<msg::Wake>("o" + std::to_string(n - 1)).size(), 1u);
}

}  // namespace
}  // namespace simpleci::dispatcher
