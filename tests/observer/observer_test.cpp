// The observer against real repositories (git command line), with a FakeClock and a recording
// link: what it sends, in which order, and when its cursor moves.
#include <git2.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "tests/shell.h"

#include "observer/observer.h"

namespace simpleci::observer {
namespace {

namespace fs = std::filesystem;

using simpleci::testing::sh;

class RecordingLink : public Link {
 public:
  bool send(const msg::Message& m) override {
    if (auto* c = std::get_if<msg::Commit>(&m)) sent.push_back(*c);
    hellos += std::holds_alternative<msg::ObserverHello>(m);
    return true;
  }
  void reconnect() override { ++reconnects; }
  std::vector<msg::Commit> sent;
  int reconnects = 0;
  int hellos = 0;
};

class ObserverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    git_libgit2_init();
    char tmpl[] = "/tmp/simpleci-otest-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    fs::create_directories(dir_ / "up");
    git("init -q -b main");
    tip_ = commit("first");
    sh("git clone -q " + (dir_ / "up").string() + " " + (dir_ / "clone").string());
    make();
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string git(const std::string& args) {
    return sh("git -c user.name=t -c user.email=t@t -C " + (dir_ / "up").string() + " " + args);
  }
  std::string commit(const std::string& msg) {
    git("commit -q --allow-empty -m " + msg);
    return git("rev-parse HEAD");
  }
  void make(std::vector<std::string> branches = {"main"}, Millis poll = Millis(100)) {
    Options o;
    o.clone_dir = (dir_ / "clone").string();
    o.branches = branches;
    o.state_file = (dir_ / "state").string();
    o.poll = poll;
    link_.sent.clear();
    obs_ = std::make_unique<Observer>(clock_, link_, o);
    std::string err;
    ASSERT_TRUE(obs_->load_state(&err)) << err;
  }
  std::vector<std::string> sent_commits() {
    std::vector<std::string> out;
    for (const auto& c : link_.sent) out.push_back(c.commit);
    link_.sent.clear();
    return out;
  }
  void wake(std::vector<msg::BranchName> branches = {}) {
    obs_->on_frames(msg::header_frame(), msg::encode(msg::Wake{std::move(branches)}));
  }
  void accept_all() {
    for (const auto& c : link_.sent) {
      obs_->on_frames(msg::header_frame(), msg::encode(msg::Accepted{c.request_id, 1, false}));
    }
  }

  fs::path dir_;
  std::string tip_;
  FakeClock clock_;
  RecordingLink link_;
  std::unique_ptr<Observer> obs_;
};

TEST_F(ObserverTest, FirstStartSendsOnlyTheTip) {
  commit("second");
  std::string tip = git("rev-parse HEAD");
  obs_->tick();
  ASSERT_EQ(link_.sent.size(), 1u);
  EXPECT_EQ(link_.sent[0].commit, tip);
  EXPECT_EQ(link_.sent[0].branch, "main");
}

TEST_F(ObserverTest, EveryNewCommitIsSentOldestFirstAndTheCursorWaitsForAccepted) {
  obs_->tick();
  accept_all();
  link_.sent.clear();
  std::vector<std::string> burst = {commit("a"), commit("b"), commit("c")};
  clock_.advance(Millis(100));
  obs_->tick();
  EXPECT_EQ(obs_->cursors().at("main"), tip_);
  auto pending = link_.sent;
  EXPECT_EQ(sent_commits(), burst);
  // Only the first two answered: the cursor moves to the second, not past the third.
  obs_->on_frames(msg::header_frame(), msg::encode(msg::Accepted{pending[1].request_id, 2, false}));
  EXPECT_EQ(obs_->cursors().at("main"), tip_);  // strictly in order
  obs_->on_frames(msg::header_frame(), msg::encode(msg::Accepted{pending[0].request_id, 1, false}));
  EXPECT_EQ(obs_->cursors().at("main"), burst[1]);
  // The unanswered one is sent again after the resend interval.
  clock_.advance(Millis(2000));
  obs_->tick();
  EXPECT_EQ(sent_commits(), std::vector<std::string>{burst[2]});
}

TEST_F(ObserverTest, RestartResumesFromTheStateFile) {
  obs_->tick();
  accept_all();
  std::string next = commit("after");
  make();
  obs_->tick();
  EXPECT_EQ(sent_commits(), std::vector<std::string>{next});
}

TEST_F(ObserverTest, ErrorAnswerKeepsTheCommitForLater) {
  obs_->tick();
  auto c = link_.sent.at(0);
  link_.sent.clear();
  obs_->on_frames(msg::header_frame(),
                  msg::encode(msg::Error{c.request_id, msg::ErrorCode::kStorageFailure, "disk full"}));
  EXPECT_EQ(obs_->cursors().count("main"), 0u);
  clock_.advance(Millis(2000));
  obs_->tick();
  EXPECT_EQ(sent_commits(), std::vector<std::string>{c.commit});
}

TEST_F(ObserverTest, AFullQueueKeepsTheCommitForLaterToo) {
  obs_->tick();
  auto c = link_.sent.at(0);
  link_.sent.clear();
  obs_->on_frames(msg::header_frame(),
                  msg::encode(msg::Error{c.request_id, msg::ErrorCode::kQueueFull, "100 jobs queued, the limit is 100"}));
  EXPECT_EQ(obs_->cursors().count("main"), 0u);
  clock_.advance(Millis(2000));
  obs_->tick();
  EXPECT_EQ(sent_commits(), std::vector<std::string>{c.commit});
}

TEST_F(ObserverTest, SilentDispatcherGetsANewConnection) {
  obs_->tick();
  for (int i = 0; i < 4; ++i) {
    clock_.advance(Millis(2000));
    obs_->tick();
  }
  clock_.advance(Millis(1000));
  obs_->tick();
  EXPECT_EQ(link_.reconnects, 1);
  // One at the start, one at once after the reconnect (9 s: before the 10 s interval).
  EXPECT_EQ(link_.hellos, 2) << "a new routing id says hello at once";
}

TEST_F(ObserverTest, WatchesSeveralBranchesAndFollowsAForcePush) {
  git("checkout -q -b dev");
  std::string dev = commit("on-dev");
  git("checkout -q main");
  make({"main", "dev"});
  obs_->tick();
  auto first = sent_commits();
  EXPECT_EQ(first.size(), 2u);
  accept_all();
  // Rewrite main: the old cursor is no longer an ancestor; the new tip is sent.
  git("reset -q --hard HEAD");
  git("commit -q --amend --allow-empty -m rewritten");
  std::string rewritten = git("rev-parse HEAD");
  clock_.advance(Millis(100));
  obs_->tick();
  EXPECT_EQ(sent_commits(), std::vector<std::string>{rewritten});
}

TEST_F(ObserverTest, APollFetchesOnlyWhenOriginMoved) {
  obs_->tick();  // the clone already has origin's tip: it is sent without a fetch
  accept_all();
  EXPECT_EQ(sent_commits(), std::vector<std::string>{tip_});
  EXPECT_TRUE(obs_->git().origin_is_local());
  for (int i = 0; i < 20; ++i) {
    clock_.advance(Millis(100));
    obs_->tick();
  }
  EXPECT_EQ(obs_->git().fetches(), 0u) << "nothing moved, nothing fetched";
  EXPECT_TRUE(sent_commits().empty());
  const std::string next = commit("loose");
  clock_.advance(Millis(100));
  obs_->tick();
  EXPECT_EQ(obs_->git().fetches(), 1u);
  EXPECT_EQ(sent_commits(), std::vector<std::string>{next});
  clock_.advance(Millis(100));
  obs_->tick();
  EXPECT_EQ(obs_->git().fetches(), 1u);
}

TEST_F(ObserverTest, APushWhoseRefIsPackedIsSeenToo) {
  obs_->tick();
  accept_all();
  link_.sent.clear();
  git("pack-refs --all");
  clock_.advance(Millis(100));
  obs_->tick();
  EXPECT_EQ(obs_->git().fetches(), 0u) << "packing refs moves nothing";
  const std::string next = commit("packed");
  git("pack-refs --all");
  clock_.advance(Millis(100));
  obs_->tick();
  EXPECT_EQ(obs_->git().fetches(), 1u);
  EXPECT_EQ(sent_commits(), std::vector<std::string>{next});
}

TEST_F(ObserverTest, AWatchedBranchThatAppearsIsFetched) {
  make({"main", "dev"});
  obs_->tick();
  EXPECT_EQ(sent_commits(), std::vector<std::string>{tip_});
  clock_.advance(Millis(100));
  obs_->tick();
  EXPECT_EQ(obs_->git().fetches(), 0u) << "a branch origin lacks is no reason to fetch";
  git("branch dev");
  clock_.advance(Millis(100));
  obs_->tick();
  EXPECT_EQ(obs_->git().fetches(), 1u);
  ASSERT_EQ(link_.sent.size(), 1u);
  EXPECT_EQ(link_.sent[0].branch, "dev");
}

TEST_F(ObserverTest, AnUnreachableOriginIsReportedAndReadAgainOnceBack) {
  obs_->tick();
  accept_all();
  link_.sent.clear();
  fs::rename(dir_ / "up", dir_ / "away");
  clock_.advance(Millis(100));
  EXPECT_FALSE(obs_->poll_git());
  fs::rename(dir_ / "away", dir_ / "up");
  const std::string next = commit("back");
  clock_.advance(Millis(100));
  EXPECT_TRUE(obs_->poll_git());
  EXPECT_EQ(sent_commits(), std::vector<std::string>{});  // queued; sent by the next tick
  obs_->tick();
  EXPECT_EQ(sent_commits(), std::vector<std::string>{next});
}

// The ls-remote path, taken for origins that are not folders on this machine.
TEST_F(ObserverTest, AskedAsARemoteOriginFetchesOnlyWhenABranchMoved) {
  GitWatch w((dir_ / "clone").string(), false);
  std::string err;
  ASSERT_TRUE(w.update({"main", "dev"}, &err)) << err;
  EXPECT_FALSE(w.origin_is_local());
  EXPECT_EQ(w.fetches(), 0u);
  const std::string next = commit("remote");
  ASSERT_TRUE(w.update({"main", "dev"}, &err)) << err;
  ASSERT_TRUE(w.update({"main", "dev"}, &err)) << err;
  EXPECT_EQ(w.fetches(), 1u);
  NewCommits found;
  ASSERT_TRUE(w.new_commits("main", tip_, 10, &found, &err)) << err;
  EXPECT_EQ(found.commits, std::vector<std::string>{next});
  sh("git -C " + (dir_ / "clone").string() + " remote set-url origin " + (dir_ / "nowhere").string());
  EXPECT_FALSE(w.update({"main"}, &err));
  EXPECT_NE(err.find("cannot reach origin"), std::string::npos) << err;
}

// ---- OBSERVER_HELLO and WAKE ----------------------------------------------------------------

TEST_F(ObserverTest, SaysHelloAtOnceThenEveryInterval) {
  obs_->tick();
  accept_all();
  EXPECT_EQ(link_.hellos, 1);
  clock_.advance(Millis(msg::kObserverHelloMs - 1));
  obs_->tick();
  EXPECT_EQ(link_.hellos, 1);
  EXPECT_LE(obs_->next_wakeup(), Millis(1));
  clock_.advance(Millis(1));
  obs_->tick();
  EXPECT_EQ(link_.hellos, 2);
}

TEST_F(ObserverTest, AWakePollsAtOnceLongBeforeThePollIsDue) {
  make({"main"}, Millis(60000));
  obs_->tick();
  accept_all();
  link_.sent.clear();
  EXPECT_EQ(obs_->polls(), 1u);
  clock_.advance(Millis(1000));
  const std::string next = commit("pushed");
  obs_->tick();
  EXPECT_TRUE(sent_commits().empty()) << "not due for 59 s";
  wake({{"main"}});
  obs_->tick();
  EXPECT_EQ(obs_->polls(), 2u);
  EXPECT_EQ(sent_commits(), std::vector<std::string>{next});
  EXPECT_EQ(obs_->next_wakeup(), Millis(1000)) << "then back to its slow timer (capped at 1 s)";
}

TEST_F(ObserverTest, AFloodOfWakesCostsOnePollPerGapAndNoneIsLost) {
  make({"main"}, Millis(60000));
  obs_->tick();
  accept_all();
  link_.sent.clear();
  const uint64_t polls = obs_->polls();
  wake();  // right after a poll: held until the gap has passed
  for (int i = 0; i < 100; ++i) {
    wake();
    obs_->tick();
  }
  EXPECT_EQ(obs_->polls(), polls);
  EXPECT_EQ(obs_->next_wakeup(), Millis(msg::kMinWakeGapMs));
  const std::string next = commit("during-the-gap");  // the push the held WAKE announced
  clock_.advance(Millis(msg::kMinWakeGapMs));
  obs_->tick();
  EXPECT_EQ(obs_->polls(), polls + 1);
  EXPECT_EQ(sent_commits(), std::vector<std::string>{next});
  for (int i = 0; i < 100; ++i) {
    clock_.advance(Millis(1));
    wake();
    obs_->tick();
  }
  EXPECT_EQ(obs_->polls(), polls + 3) << "100 ms of wakes: one poll per 50 ms";
}

TEST_F(ObserverTest, AWakeForBranchesItDoesNotWatchIsIgnored) {
  make({"main"}, Millis(60000));
  obs_->tick();
  const uint64_t polls = obs_->polls();
  clock_.advance(Millis(1000));
  wake({{"other"}, {"dev"}});
  obs_->tick();
  EXPECT_EQ(obs_->polls(), polls);
  wake({{"dev"}, {"main"}});
  obs_->tick();
  EXPECT_EQ(obs_->polls(), polls + 1);
}

}  // namespace
}  // namespace simpleci::observer
