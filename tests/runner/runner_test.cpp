// The runner's protocol logic with a FakeClock, a recording link, a scripted executor and a
// workspace that needs no git: no sleeping.
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>

#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include "runner/runner.h"

namespace simpleci::runner {
namespace {

namespace fs = std::filesystem;
using msg::JobStatus;

class FakeLink : public Link {
 public:
  bool send(const msg::Message& m) override {
    sent.push_back(m);
    return true;
  }
  void reconnect() override { ++reconnects; }
  size_t output_in_flight() const override { return in_flight; }
  size_t in_flight = 0;  // what the transport reports as queued and not yet written
  template <typename T>
  std::vector<T> take() {
    std::vector<T> out;
    std::vector<msg::Message> rest;
    for (auto& m : sent) {
      if (std::holds_alternative<T>(m)) out.push_back(std::get<T>(m));
      else rest.push_back(m);
    }
    sent.swap(rest);
    return out;
  }
  std::vector<msg::Message> sent;
  int reconnects = 0;
};

class FakeExecutor : public Executor {
 public:
  bool start(const RunSpec& spec, std::string*) override {
    started.push_back(spec);
    active[spec.job_id] = std::make_unique<OutputCapture>(spec.output_cap);
    return true;
  }
  void cancel(uint64_t id) override {
    cancelled.push_back(id);
    active.erase(id);
  }
  std::vector<Finished> poll() override {
    std::vector<Finished> out;
    out.swap(finish);
    for (auto& f : out) active.erase(f.job_id);
    return out;
  }
  std::vector<int> fds() const override { return {}; }
  Millis max_sleep() const override { return sleep; }
  size_t running() const override { return active.size(); }
  LiveBacklog* live(uint64_t id) const override {
    auto it = active.find(id);
    return it == active.end() ? nullptr : &it->second->live();
  }
  // The job printed data.
  void print(uint64_t id, std::string_view data) { active.at(id)->append(data); }
  std::vector<RunSpec> started;
  std::vector<uint64_t> cancelled;
  std::vector<Finished> finish;
  std::map<uint64_t, std::unique_ptr<OutputCapture>> active;
  Millis sleep{1000};
};

class FakeWorkspace : public Workspace {
 public:
  Prepared prepare(int slot, const Checkout& c, std::string* workdir, std::string* err) override {
    const std::string& commit = c.commit;
    {
      std::lock_guard<std::mutex> lock(mu);
      calls.push_back({slot, c.branch, thread_serial(), c.repo, c.url});
    }
    if (commit == std::string(40, 'f')) {
      *err = "commit is not in origin";
      return Prepared::kMissingCommit;
    }
    if (commit == std::string(40, 'b')) {
      *err = "cannot fetch origin: broken";
      return Prepared::kFailed;
    }
    *workdir = checkout.empty() ? "/nonexistent/slot" + std::to_string(slot) : checkout;
    return Prepared::kReady;
  }
  // A number of its own for every thread ever started (thread ids are reused once joined).
  static int thread_serial() {
    static std::atomic<int> next{1};
    thread_local const int mine = next++;
    return mine;
  }
  struct Call {
    int slot;
    std::string branch;
    int thread;
    std::string repo, url;
  };
  std::string checkout;  // the folder every checkout is in ("": /nonexistent/slot<k>)
  std::mutex mu;
  std::vector<Call> calls;
};

class RunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/simpleci-rtest-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    make();
  }
  void TearDown() override {
    r_.reset();
    fs::remove_all(dir_);
  }
  void make(uint32_t capacity = 1, bool trusted = true) {
    Options opt{"r1", capacity, dir_};
    opt.trust_wire_command = trusted;
    make_with(opt);
  }
  void make_with(Options opt) {
    r_.reset();
    opt.test_command = "./own-tests";
    r_ = std::make_unique<Runner>(clock_, link_, exec_, ws_, opt);
    std::string err;
    ASSERT_TRUE(r_->start(&err)) << err;
  }
  void deliver(const msg::Message& m) { r_->on_frames(msg::header_frame(), msg::encode(m)); }
  size_t held_files() const {
    size_t n = 0;
    for (const auto& e : fs::directory_iterator(dir_ / "results")) n += e.path().extension() == ".result";
    return n;
  }
  void advance(int ms) {
    clock_.advance(Millis(ms));
    r_->tick();
  }
  void welcome() {
    deliver(msg::Welcome{100});
    link_.sent.clear();
  }
  msg::Job job(uint64_t id, uint32_t attempt = 1) {
    return msg::Job{id, attempt, std::string(40, 'a'), "main", "make test", 60, 4096};
  }
  void run_job(uint64_t id, int exit_code) {
    deliver(job(id));
    r_->wait_checkouts();
    exec_.finish.push_back({id, exit_code ? JobStatus::kFailed : JobStatus::kPassed, exit_code, "out", false, "", 0});
    r_->tick();
  }

  fs::path dir_;
  FakeClock clock_;
  FakeLink link_;
  FakeExecutor exec_;
  FakeWorkspace ws_;
  std::unique_ptr<Runner> r_;
};

TEST_F(RunnerTest, RegistersOncePerSecondUntilWelcomedThenHeartbeats) {
  EXPECT_EQ(link_.take<msg::Register>().size(), 1u);
  advance(500);
  EXPECT_EQ(link_.take<msg::Register>().size(), 0u);
  advance(500);
  auto reg = link_.take<msg::Register>();
  ASSERT_EQ(reg.size(), 1u);
  EXPECT_EQ(reg[0].name, "r1");
  EXPECT_EQ(reg[0].capacity, 1u);
  deliver(msg::Welcome{100});
  EXPECT_TRUE(r_->registered());
  advance(100);
  EXPECT_EQ(link_.take<msg::Heartbeat>().size(), 1u);
}

TEST_F(RunnerTest, UnauthenticatedDispatcherCannotChooseTheShellCommand) {
  make(1, false);
  welcome();
  run_job(5, 0);
  deliver(msg::Job{6, 1, std::string(40, 'a'), "main", "id > /tmp/owned", 60, 4096});
  r_->wait_checkouts();
  ASSERT_EQ(exec_.started.size(), 2u);
  for (const auto& spec : exec_.started) {
    EXPECT_EQ(spec.argv, (std::vector<std::string>{"/bin/sh", "-c", "./own-tests"}));
  }
}

TEST_F(RunnerTest, SilentDispatcherMeansReconnectWithDoublingBackoff) {
  welcome();
  advance(100);
  advance(100);
  advance(100);  // 300 ms of silence = 3 intervals
  EXPECT_FALSE(r_->registered());
  EXPECT_EQ(link_.reconnects, 0);
  advance(1000);
  EXPECT_EQ(link_.reconnects, 1);
  EXPECT_EQ(link_.take<msg::Register>().size(), 1u);
  advance(1000);
  advance(1000);
  advance(1000);  // no WELCOME in 3 s: next reconnect after 2 s
  advance(1000);
  EXPECT_EQ(link_.reconnects, 1);
  advance(1000);
  EXPECT_EQ(link_.reconnects, 2);
  deliver(msg::Welcome{100});
  EXPECT_TRUE(r_->registered());
}

TEST_F(RunnerTest, RunsAJobAndResendsTheResultUntilAcknowledged) {
  welcome();
  run_job(5, 0);
  ASSERT_EQ(exec_.started.size(), 1u);
  EXPECT_EQ(exec_.started[0].argv, (std::vector<std::string>{"/bin/sh", "-c", "make test"}));
  EXPECT_EQ(exec_.started[0].workdir, "/nonexistent/slot0");
  auto env = exec_.started[0].env;
  EXPECT_NE(std::find(env.begin(), env.end(), "SIMPLECI_COMMIT=" + std::string(40, 'a')), env.end());
  auto res = link_.take<msg::Result>();
  ASSERT_EQ(res.size(), 1u);
  EXPECT_EQ(res[0].status, JobStatus::kPassed);
  EXPECT_EQ(r_->pending_results(), 1u);
  for (int i = 0; i < 3; ++i) {
    clock_.advance(Millis(100));
    deliver(msg::Heartbeat{});
    r_->tick();
  }
  EXPECT_EQ(link_.take<msg::Result>().size(), 1u);  // resent after 3 intervals without ack
  deliver(msg::ResultAck{5, 1});
  EXPECT_EQ(r_->pending_results(), 0u);
  EXPECT_EQ(held_files(), 0u) << "the acknowledged result is still held";
}

// An acknowledged result's file is kept as a spare and written over by the next result (no
// inode allocated and freed per job); what is held is still exactly the unacknowledged results,
// also after a restart.
TEST_F(RunnerTest, AcknowledgedResultFilesAreReusedForLaterResults) {
  welcome();
  run_job(1, 0);
  const fs::path first = dir_ / "results" / "1-1.result";
  ASSERT_TRUE(fs::exists(first));
  struct stat st {};
  ASSERT_EQ(::stat(first.c_str(), &st), 0);
  const ino_t inode = st.st_ino;
  deliver(msg::ResultAck{1, 1});
  EXPECT_EQ(held_files(), 0u);
  run_job(2, 3);
  const fs::path second = dir_ / "results" / "2-1.result";
  ASSERT_EQ(::stat(second.c_str(), &st), 0);
  EXPECT_EQ(st.st_ino, inode) << "the second result got a new file";
  make();  // a restart: the spare is not taken for a result, the held one is delivered
  welcome();
  EXPECT_EQ(r_->pending_results(), 1u);
  deliver(msg::ResultAck{2, 1});
  EXPECT_EQ(held_files(), 0u);
}

TEST_F(RunnerTest, UnacknowledgedResultSurvivesARestartAndIsDeliveredAfterWelcome) {
  welcome();
  run_job(8, 2);
  link_.sent.clear();
  make();  // the runner process restarts
  auto reg = link_.take<msg::Register>();
  ASSERT_EQ(reg.size(), 1u);
  EXPECT_EQ(reg[0].held_jobs, (std::vector<uint64_t>{8}));
  deliver(msg::Welcome{100});
  auto res = link_.take<msg::Result>();
  ASSERT_EQ(res.size(), 1u);
  EXPECT_EQ(res[0].job_id, 8u);
  EXPECT_EQ(res[0].exit_code, 2);
  EXPECT_EQ(res[0].status, JobStatus::kFailed);
}

TEST_F(RunnerTest, FailedCheckoutEndsTheJobAsError) {
  welcome();
  msg::Job j = job(3);
  j.commit = std::string(40, 'f');
  deliver(j);
  r_->wait_checkouts();
  auto res = link_.take<msg::Result>();
  ASSERT_EQ(res.size(), 1u);
  EXPECT_EQ(res[0].status, JobStatus::kError);
  EXPECT_NE(res[0].output.find("not in origin"), std::string::npos);
  EXPECT_EQ(res[0].exit_code, -1) << "the commit's problem: final";
  EXPECT_TRUE(exec_.started.empty());
}

TEST_F(RunnerTest, BrokenCloneReportsASetupFailureSoTheJobCanGoElsewhere) {
  welcome();
  msg::Job j = job(5);
  j.commit = std::string(40, 'b');
  deliver(j);
  r_->wait_checkouts();
  auto res = link_.take<msg::Result>();
  ASSERT_EQ(res.size(), 1u);
  EXPECT_EQ(res[0].status, JobStatus::kError);
  EXPECT_EQ(res[0].exit_code, msg::kExitSetupFailed);
  EXPECT_NE(res[0].output.find("cannot fetch"), std::string::npos);
}

TEST_F(RunnerTest, CancelKillsTheJobAndSendsNoResult) {
  welcome();
  deliver(job(4));
  r_->wait_checkouts();
  deliver(msg::CancelJob{4, 1});
  EXPECT_EQ(exec_.cancelled, (std::vector<uint64_t>{4}));
  r_->tick();
  EXPECT_TRUE(link_.take<msg::Result>().empty());
  EXPECT_EQ(r_->active_jobs(), 0u);
}

TEST_F(RunnerTest, JobsBeyondCapacityWaitForAFreeSlot) {
  make(2);
  welcome();
  deliver(job(1));
  deliver(job(2));
  deliver(job(3));
  r_->wait_checkouts();
  ASSERT_EQ(exec_.started.size(), 2u);
  std::set<std::string> dirs = {exec_.started[0].workdir, exec_.started[1].workdir};
  EXPECT_EQ(dirs, (std::set<std::string>{"/nonexistent/slot0", "/nonexistent/slot1"}));
  exec_.finish.push_back({exec_.started[0].job_id, JobStatus::kPassed, 0, "", false, "", 0});
  r_->tick();
  r_->wait_checkouts();
  ASSERT_EQ(exec_.started.size(), 3u);
  EXPECT_EQ(exec_.started[2].job_id, 3u);
}

// Checkouts run off the loop's thread, each slot its own, and the fetch is told the job's branch.
TEST_F(RunnerTest, CheckoutsRunOffTheLoopThreadAndKnowTheBranch) {
  make(2);
  welcome();
  for (uint64_t id = 1; id <= 6; ++id) {
    deliver(job(id));
    r_->wait_checkouts();
    exec_.finish.push_back({id, JobStatus::kPassed, 0, "", false, "", 0});
    r_->tick();
  }
  ASSERT_EQ(ws_.calls.size(), 6u);
  for (const auto& c : ws_.calls) {
    EXPECT_EQ(c.branch, "main");
    EXPECT_NE(c.thread, FakeWorkspace::thread_serial());
  }
}

// While jobs run, the loop sleeps as long as the executor allows (it is woken by their pipes
// and pidfds), but no longer than the idle cadence of heartbeats.
TEST_F(RunnerTest, WhileAJobRunsTheLoopSleepsUntilTheExecutorNeedsIt) {
  welcome();
  const Millis idle = r_->next_wakeup();
  deliver(job(1));
  r_->wait_checkouts();
  exec_.sleep = Millis(3);
  EXPECT_EQ(r_->next_wakeup(), Millis(3));
  exec_.sleep = Millis(100000);
  EXPECT_EQ(r_->next_wakeup(), idle);
}

TEST_F(RunnerTest, DrainFinishesRunningWorkThenIsDone) {
  welcome();
  deliver(job(1));
  r_->wait_checkouts();
  r_->drain();
  EXPECT_EQ(link_.take<msg::Drain>().size(), 1u);
  EXPECT_FALSE(r_->done());
  exec_.finish.push_back({1, JobStatus::kPassed, 0, "", false, "", 0});
  r_->tick();
  EXPECT_FALSE(r_->done());  // result not yet acknowledged
  deliver(msg::ResultAck{1, 1});
  EXPECT_TRUE(r_->done());
}

TEST_F(RunnerTest, GarbageFromTheDispatcherIsDropped) {
  welcome();
  r_->on_frames("junk", "\xc1");
  r_->on_frames(msg::header_frame(), std::string("\xdd\xff\xff\xff\xff", 5));
  EXPECT_TRUE(r_->registered());
  EXPECT_TRUE(link_.sent.empty());
}

// A dispatcher sending garbage fast gets a few log lines a second, and the next line allowed
// says how many were held back (they are not silently lost).
TEST_F(RunnerTest, AFloodOfBadFramesIsLoggedWithHowManyWereHeldBack) {
  welcome();
  auto ring = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(100);
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("test", ring));
  ring->set_pattern("%v");
  for (int i = 0; i < 50; ++i) r_->on_frames("junk", "\xc1");
  clock_.advance(Millis(2000));
  r_->on_frames("junk", "\xc1");
  auto lines = ring->last_formatted();
  spdlog::set_default_logger(previous);
  ASSERT_GE(lines.size(), 2u);
  EXPECT_LT(lines.size(), 20u) << "the flood was not limited";
  EXPECT_NE(lines.back().find("similar lines held back"), std::string::npos) << lines.back();
}

TEST_F(RunnerTest, TheWholeOutputIsStreamedLiveWhateverTheCap) {
  welcome();
  deliver(job(5));  // output cap 4096
  r_->wait_checkouts();
  r_->tick();
  std::string printed;
  for (int i = 0; i < 50; ++i) {  // 10,000 bytes, far past the cap
    const std::string line(199, static_cast<char>('a' + i % 26));
    exec_.print(5, line + "\n");
    printed += line + "\n";
    deliver(msg::Heartbeat{});  // the dispatcher is there
    advance(20);
  }
  std::string streamed;
  for (const auto& o : link_.take<msg::Output>()) {
    EXPECT_EQ(o.offset, streamed.size());  // nothing skipped: it never fell behind
    streamed += o.data;
  }
  EXPECT_EQ(streamed, printed);
}

TEST_F(RunnerTest, ABacklogOverTheLimitSkipsTheOldestUnsentBytes) {
  welcome();
  deliver(job(5));
  r_->wait_checkouts();
  r_->tick();
  exec_.print(5, std::string(100, 'x'));
  exec_.print(5, std::string(msg::kRunnerLiveBacklog - 1, 'y') + "z");  // before the runner had a turn
  advance(20);
  const auto out = link_.take<msg::Output>();
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out.front().offset, 100u);  // the 100 oldest bytes were skipped
  uint64_t next = out.front().offset;
  for (const auto& o : out) {
    EXPECT_EQ(o.offset, next);
    next += o.data.size();
  }
  EXPECT_EQ(next, 100 + msg::kRunnerLiveBacklog);
  EXPECT_EQ(out.back().data.back(), 'z');
}

// A dispatcher that reads slowly (a loaded machine) leaves OUTPUT queued in the runner's socket:
// past 4 MiB in flight, live output waits in the bounded backlog instead of piling up there
// (a flood of 1 GiB once grew a runner by 77 MB this way).
TEST_F(RunnerTest, LiveOutputWaitsWhileTooMuchIsInFlight) {
  welcome();
  deliver(job(5));
  r_->wait_checkouts();
  r_->tick();
  link_.in_flight = (size_t{4} << 20) + 1;
  exec_.print(5, std::string(3 * msg::kMaxChunkBytes, 'x'));
  advance(20);
  EXPECT_TRUE(link_.take<msg::Output>().empty());
  link_.in_flight = 0;  // the transport wrote it out
  advance(20);
  const auto out = link_.take<msg::Output>();
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out.front().offset, 0u) << "nothing was lost while it waited";
}

TEST_F(RunnerTest, TheUnsentEndOfTheOutputGoesBeforeTheResult) {
  welcome();
  deliver(job(5));
  r_->wait_checkouts();
  r_->tick();
  link_.sent.clear();
  exec_.finish.push_back({5, JobStatus::kPassed, 0, "out", false, "the end\n", 100});
  r_->tick();
  ASSERT_GE(link_.sent.size(), 2u);
  const auto* o = std::get_if<msg::Output>(&link_.sent[0]);
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(o->offset, 100u);
  EXPECT_EQ(o->data, "the end\n");
  EXPECT_TRUE(std::holds_alternative<msg::Result>(link_.sent[1]));
}

// --- Repositories, labels and named jobs (docs/MULTI.md) ---

class RepoRunnerTest : public RunnerTest {
 protected:
  // A runner with --cache and, when given, --repo-url docs=...; trusted or not.
  void make_cache(bool trusted, std::map<std::string, std::string> repo_urls = {}) {
    Options opt{"r1", 1, dir_};
    opt.trust_wire_command = trusted;
    opt.serves_unnamed = false;
    opt.serves_all = true;
    opt.repo_urls = std::move(repo_urls);
    make_with(opt);
  }
  msg::Job named(uint64_t id, const std::string& repo, const std::string& url = "") {
    msg::Job j = job(id);
    j.repo = repo;
    j.url = url;
    return j;
  }
  // The one RESULT sent, after the checkout (if any) came back.
  msg::Result only_result() {
    r_->wait_checkouts();
    auto res = link_.take<msg::Result>();
    EXPECT_EQ(res.size(), 1u);
    return res.empty() ? msg::Result{} : res[0];
  }
};

TEST_F(RepoRunnerTest, RegisterSaysTheLabelsAndWhatIsServed) {
  Options opt{"r1", 2, dir_};
  opt.labels = {"linux", "x86_64", "amd64", "gpu"};
  opt.serves_unnamed = false;
  opt.serves_all = true;
  opt.trust_wire_command = true;
  link_.sent.clear();
  make_with(opt);
  auto reg = link_.take<msg::Register>();
  ASSERT_EQ(reg.size(), 1u);
  EXPECT_EQ(reg[0].labels, opt.labels);
  EXPECT_FALSE(reg[0].serves_unnamed);
  EXPECT_TRUE(reg[0].serves_all);
  // Not trusted and without a --repo-url, it could fetch no named repository: it says so.
  opt.trust_wire_command = false;
  make_with(opt);
  reg = link_.take<msg::Register>();
  ASSERT_EQ(reg.size(), 1u);
  EXPECT_FALSE(reg[0].serves_all);
  opt.repo_urls = {{"docs", "/srv/docs.git"}};
  make_with(opt);
  reg = link_.take<msg::Register>();
  ASSERT_EQ(reg.size(), 1u);
  EXPECT_TRUE(reg[0].serves_all);
  make();  // the original flow: the positional clone only
  reg = link_.take<msg::Register>();
  ASSERT_EQ(reg.size(), 1u);
  EXPECT_TRUE(reg[0].labels.empty());
  EXPECT_TRUE(reg[0].serves_unnamed);
  EXPECT_FALSE(reg[0].serves_all);
}

TEST_F(RepoRunnerTest, AnUnauthenticatedDispatchersUrlIsNeverFetched) {
  make_cache(false);
  deliver(msg::Welcome{100, {{"docs", "https://evil.example/docs.git", 0}}});
  deliver(named(7, "docs", "https://evil.example/docs.git"));
  const msg::Result r = only_result();
  EXPECT_EQ(r.status, JobStatus::kError);
  EXPECT_EQ(r.exit_code, msg::kExitSetupFailed);
  EXPECT_EQ(r.output,
            "simpleci: no URL for repository docs: give --repo-url docs=URL (the dispatcher is not "
            "authenticated)\n");
  EXPECT_TRUE(ws_.calls.empty()) << "a checkout was tried";
  EXPECT_TRUE(exec_.started.empty());
}

TEST_F(RepoRunnerTest, RepoUrlWinsOverWhatTheDispatcherSends) {
  for (bool trusted : {false, true}) {
    make_cache(trusted, {{"docs", "/srv/mirror/docs"}});
    deliver(msg::Welcome{100, {{"docs", "https://example.org/docs.git", 0}}});
    ws_.calls.clear();
    const uint64_t id = trusted ? 8 : 7;
    deliver(named(id, "docs", "https://example.org/docs.git"));
    r_->wait_checkouts();
    ASSERT_EQ(ws_.calls.size(), 1u);
    EXPECT_EQ(ws_.calls[0].repo, "docs");
    EXPECT_EQ(ws_.calls[0].url, "/srv/mirror/docs") << "trusted: " << trusted;
    ASSERT_EQ(exec_.started.size(), 1u);
    exec_.started.clear();
    exec_.finish.push_back({id, JobStatus::kPassed, 0, "", false, "", 0});
    r_->tick();
  }
}

TEST_F(RepoRunnerTest, AnAuthenticatedDispatcherChoosesTheUrl) {
  make_cache(true);
  deliver(msg::Welcome{100, {{"docs", "https://example.org/docs.git", 0}, {"site", "", 0}}});
  deliver(named(1, "docs", "https://example.org/moved/docs.git"));  // the JOB's own URL first
  r_->wait_checkouts();
  exec_.finish.push_back({1, JobStatus::kPassed, 0, "", false, "", 0});
  r_->tick();
  deliver(named(2, "docs"));  // then the WELCOME's
  r_->wait_checkouts();
  ASSERT_EQ(ws_.calls.size(), 2u);
  EXPECT_EQ(ws_.calls[0].url, "https://example.org/moved/docs.git");
  EXPECT_EQ(ws_.calls[1].url, "https://example.org/docs.git");
  exec_.finish.push_back({2, JobStatus::kPassed, 0, "", false, "", 0});
  r_->tick();
  link_.sent.clear();
  deliver(named(3, "site"));  // declared without a URL
  const msg::Result r = only_result();
  EXPECT_EQ(r.exit_code, msg::kExitSetupFailed);
  EXPECT_EQ(r.output, "simpleci: no URL for repository site: give --repo-url site=URL (the dispatcher sent none)\n");
}

TEST_F(RepoRunnerTest, AJobForARepositoryThisRunnerDoesNotServeIsASetupFailure) {
  welcome();  // the original runner: a positional clone, no --cache
  deliver(named(4, "docs", "https://example.org/docs.git"));
  msg::Result r = only_result();
  EXPECT_EQ(r.exit_code, msg::kExitSetupFailed);
  EXPECT_EQ(r.output, "simpleci: this runner does not serve repository docs (it was started without --cache DIR)\n");
  make_cache(true);  // --cache only
  welcome();
  deliver(job(5));
  r = only_result();
  EXPECT_EQ(r.exit_code, msg::kExitSetupFailed);
  EXPECT_EQ(r.output,
            "simpleci: this runner does not serve the unnamed repository (it was started without CLONE_DIR)\n");
  EXPECT_TRUE(ws_.calls.empty());
  EXPECT_EQ(r_->active_jobs(), 0u);
}

// Several jobs it cannot serve, arriving at once, each get their result and free their slot.
TEST_F(RepoRunnerTest, UnservableJobsDoNotHoldSlots) {
  make_cache(false, {{"docs", "/srv/docs"}});
  welcome();
  for (uint64_t id = 1; id <= 5; ++id) deliver(named(id, "other"));
  deliver(named(6, "docs"));
  r_->wait_checkouts();
  EXPECT_EQ(link_.take<msg::Result>().size(), 5u);
  ASSERT_EQ(exec_.started.size(), 1u);
  EXPECT_EQ(exec_.started[0].job_id, 6u);
}

class NamedJobTest : public RunnerTest {
 protected:
  void SetUp() override {
    RunnerTest::SetUp();
    checkout_ = dir_ / "checkout";
    fs::create_directories(checkout_ / ".simpleci" / "jobs");
    ws_.checkout = checkout_.string();
    welcome();
  }
  void script(const std::string& rel, fs::perms perms) {
    std::ofstream(checkout_ / rel) << "#!/bin/sh\necho hi\n";
    fs::permissions(checkout_ / rel, perms);
  }
  msg::Job named_job(uint64_t id, const std::string& name) {
    msg::Job j = job(id);
    j.job_name = name;
    return j;
  }
  fs::path checkout_;
};

TEST_F(NamedJobTest, ANamedJobRunsItsScriptAndAnUnnamedOneTheTest) {
  script(".simpleci/jobs/lint", fs::perms::owner_all);
  script(".simpleci/test", fs::perms::owner_all);
  deliver(named_job(1, "lint"));
  r_->wait_checkouts();
  exec_.finish.push_back({1, JobStatus::kPassed, 0, "", false, "", 0});
  r_->tick();
  deliver(job(2));
  r_->wait_checkouts();
  ASSERT_EQ(exec_.started.size(), 2u);
  const std::string root = fs::canonical(checkout_).string();
  EXPECT_EQ(exec_.started[0].argv, (std::vector<std::string>{root + "/.simpleci/jobs/lint"}));
  EXPECT_EQ(exec_.started[0].timeout_s, 60u);
  const auto& env = exec_.started[0].env;
  EXPECT_NE(std::find(env.begin(), env.end(), "SIMPLECI_JOB_NAME=lint"), env.end());
  EXPECT_EQ(exec_.started[1].argv, (std::vector<std::string>{(checkout_ / ".simpleci" / "test").string()}));
}

// A job the commit does not hold (or not as an executable file of its own) ends as error with
// the reason, final (-1): the commit's problem, nothing another runner would do better.
TEST_F(NamedJobTest, AMissingOrBadJobScriptIsTheCommitsError) {
  script(".simpleci/jobs/noexec", fs::perms::owner_read | fs::perms::owner_write);
  script("elsewhere", fs::perms::owner_all);
  fs::create_symlink("../../elsewhere", checkout_ / ".simpleci" / "jobs" / "link");
  fs::create_directories(checkout_ / ".simpleci" / "jobs" / "dir");
  const std::map<std::string, std::string> expected = {
      {"gone", "simpleci: job gone: .simpleci/jobs/gone is not in this commit\n"},
      {"noexec", "simpleci: job noexec: .simpleci/jobs/noexec is not executable (chmod +x it and commit)\n"},
      {"link", "simpleci: job link: .simpleci/jobs/link is not a regular file in the checkout (a job must be "
               "one, not a symbolic link or a folder)\n"},
      {"dir", "simpleci: job dir: .simpleci/jobs/dir is not a regular file in the checkout (a job must be "
              "one, not a symbolic link or a folder)\n"},
  };
  uint64_t id = 1;
  for (const auto& [name, output] : expected) {
    deliver(named_job(id++, name));
    r_->wait_checkouts();
    auto res = link_.take<msg::Result>();
    ASSERT_EQ(res.size(), 1u) << name;
    EXPECT_EQ(res[0].status, JobStatus::kError) << name;
    EXPECT_EQ(res[0].exit_code, -1) << name;
    EXPECT_EQ(res[0].output, output);
  }
  EXPECT_TRUE(exec_.started.empty());
}

// The jobs folder itself must not lead out of the checkout either.
TEST_F(NamedJobTest, AJobsFolderThatIsALinkIsRefused) {
  fs::remove_all(checkout_ / ".simpleci" / "jobs");
  fs::create_directories(dir_ / "outside");
  std::ofstream(dir_ / "outside" / "x") << "#!/bin/sh\n";
  fs::permissions(dir_ / "outside" / "x", fs::perms::owner_all);
  fs::create_symlink(dir_ / "outside", checkout_ / ".simpleci" / "jobs");
  deliver(named_job(1, "x"));
  r_->wait_checkouts();
  auto res = link_.take<msg::Result>();
  ASSERT_EQ(res.size(), 1u);
  EXPECT_EQ(res[0].exit_code, -1);
  EXPECT_NE(res[0].output.find("not a regular file in the checkout"), std::string::npos) << res[0].output;
  EXPECT_TRUE(exec_.started.empty());
}

}  // namespace
}  // namespace simpleci::runner
