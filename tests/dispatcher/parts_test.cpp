// The dispatcher's parts alone, without a Dispatcher or a store: the JobQueue's order and
// indexes, the RunnerRegistry's choice of runner, LiveOutput's window.
#include <malloc.h>

#include <map>
#include <random>

#include <gtest/gtest.h>

#include "dispatcher/job_queue.h"
#include "dispatcher/live_output.h"
#include "dispatcher/runner_registry.h"

namespace simpleci::dispatcher {
namespace {

using msg::JobStatus;
using Pick = JobQueue::Pick;

msg::JobSummary job(uint64_t id, const std::string& commit) {
  msg::JobSummary s;
  s.job_id = id;
  s.commit = commit;
  return s;
}

// Starts every queued job the walk reaches, on runner r; returns their ids in order.
std::vector<uint64_t> start_all(JobQueue& q, const std::string& r) {
  std::vector<uint64_t> started;
  q.walk_queue(64, [&](Active& a) {
    a.s.runner = r;
    started.push_back(a.s.job_id);
    return Pick::kStart;
  });
  return started;
}

TEST(JobQueue, OldestFirstARequeuedJobGoesToTheFrontAndIndexesFollow) {
  JobQueue q;
  q.add(job(1, "c1"));
  q.add(job(2, "c2"));
  EXPECT_EQ(q.by_commit("c2"), 2u);
  EXPECT_EQ(start_all(q, "r1"), (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(q.queued(), 0u);
  EXPECT_EQ(q.running(), (std::set<uint64_t>{1, 2}));
  q.requeue(2);
  EXPECT_EQ(q.find(2)->s.status, JobStatus::kQueued);
  EXPECT_TRUE(q.find(2)->s.runner.empty());
  q.add(job(3, "c3"));
  EXPECT_EQ(start_all(q, "r1"), (std::vector<uint64_t>{2, 3})) << "the requeued job first";
  q.remove(1);
  EXPECT_EQ(q.find(1), nullptr);
  EXPECT_EQ(q.by_commit("c1"), 0u);
  EXPECT_EQ(q.active(), 2u);
}

TEST(JobQueue, ASkippedJobLetsTheOnesBehindGoAndStopEndsTheWalk) {
  JobQueue q;
  for (uint64_t id = 1; id <= 3; ++id) q.add(job(id, "c" + std::to_string(id)));
  q.walk_queue(64, [](Active& a) { return a.s.job_id == 1 ? Pick::kSkip : Pick::kStart; });
  EXPECT_EQ(q.queued(), 1u);
  EXPECT_EQ(q.running(), (std::set<uint64_t>{2, 3}));
  q.walk_queue(64, [](Active&) { return Pick::kStop; });
  EXPECT_EQ(q.queued(), 1u);
}

TEST(JobQueue, RunningJobsWithoutTheirRunnerAreOrphansUntilClaimed) {
  JobQueue q;
  std::vector<JobRow> rows(3);
  rows[0].summary = job(1, "c1");
  rows[1].summary = job(2, "c2");
  rows[1].summary.status = JobStatus::kRunning;
  rows[1].summary.runner = "gone";
  rows[2].summary = job(3, "c3");
  rows[2].summary.status = JobStatus::kRunning;
  rows[2].summary.runner = "here";
  const size_t orphans =
      q.load(rows, [](const std::string& r, uint64_t) { return r == "here"; }, SteadyTime{});
  EXPECT_EQ(orphans, 1u);
  EXPECT_EQ(q.orphans_of("gone"), std::set<uint64_t>{2});
  EXPECT_TRUE(q.orphans_of("here").empty());
  EXPECT_EQ(q.queued(), 1u);
  q.unorphan(2);
  EXPECT_TRUE(q.orphans_of("gone").empty());
  EXPECT_FALSE(q.find(2)->orphaned);
}

std::string hex_commit(std::mt19937_64& rng, size_t digits = 40) {
  static const char* hex = "0123456789abcdef";
  std::string s(digits, '0');
  for (auto& c : s) c = hex[rng() % 16];
  return s;
}

TEST(JobQueue, WaitingJobsKeepTheirOrderIndexesAndSummariesThroughRemovalsAndCompaction) {
  JobQueue q;
  std::mt19937_64 rng(7);
  std::vector<std::string> commits(1001);
  for (uint64_t id = 1; id <= 1000; ++id) {
    commits[id] = id % 3 == 0 ? hex_commit(rng, 64) : id % 7 == 0 ? "odd-" + std::to_string(id) : hex_commit(rng);
    msg::JobSummary s = job(id, commits[id]);
    s.branch = id % 2 ? "main" : "feature/" + std::to_string(id % 5);
    s.created_at_ms = 1000 + static_cast<int64_t>(id);
    q.add(s);
  }
  for (uint64_t id = 100; id < 900; ++id) {
    if (id % 4 != 1) q.remove(id);  // most of the middle is cancelled: compacted
  }
  EXPECT_EQ(q.queued(), 1000u - 600u);
  const Active* a = q.find(101);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->s.commit, commits[101]);
  EXPECT_EQ(a->s.branch, "main");
  EXPECT_EQ(a->s.created_at_ms, 1101);
  EXPECT_EQ(a->s.status, JobStatus::kQueued);
  EXPECT_EQ(q.find(102), nullptr);
  for (uint64_t id = 1; id <= 1000; ++id) {
    const bool active = id < 100 || id >= 900 || id % 4 == 1;
    EXPECT_EQ(q.by_commit(commits[id]), active ? id : 0u) << id;
  }
  EXPECT_EQ(q.by_commit(hex_commit(rng)), 0u);
  std::vector<uint64_t> seen;
  q.walk_queue(64, [&](Active& v) {
    seen.push_back(v.s.job_id);
    EXPECT_EQ(v.s.commit, commits[v.s.job_id]);
    return seen.size() < 150 ? Pick::kStart : Pick::kStop;
  });
  ASSERT_EQ(seen.size(), 150u);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end())) << "lowest id first";
  EXPECT_EQ(seen[99], 101u) << "removed jobs are skipped";
  EXPECT_EQ(q.running().size(), 149u);
  EXPECT_EQ(q.by_commit(commits[5]), 5u) << "a running job keeps its commit";
  q.requeue(5);
  EXPECT_EQ(start_all(q, "r").front(), 5u) << "the requeued job before the waiting ones";
  for (uint64_t id = 1; id <= 1000; ++id) q.remove(id);
  EXPECT_EQ(q.active(), 0u);
  EXPECT_EQ(q.queued(), 0u);
  EXPECT_EQ(q.by_commit(commits[950]), 0u);
}

// The compact queue against a plain model, through random adds, starts, requeues and removals:
// the commit index (its deletions shift entries back, it grows and shrinks) and the order must
// agree with the model at every step.
TEST(JobQueue, AgreesWithAPlainModelThroughRandomChanges) {
  JobQueue q;
  std::mt19937_64 rng(11);
  std::map<uint64_t, std::string> commit_of;  // active jobs
  std::deque<uint64_t> requeued;              // model of the front, in queue order
  std::set<uint64_t> waiting, running;
  uint64_t next = 1;
  for (int step = 0; step < 20000; ++step) {
    const int op = static_cast<int>(rng() % 10);
    if (op < 5 || commit_of.empty()) {  // a new job, with a 40- or 64-digit commit
      const std::string c = rng() % 4 ? hex_commit(rng) : hex_commit(rng, 64);
      q.add(job(next, c));
      commit_of[next] = c;
      waiting.insert(next++);
    } else if (op < 7) {  // start up to 3 jobs
      int n = 0;
      q.walk_queue(64, [&](Active& a) {
        if (n++ == 3) return Pick::kStop;
        const uint64_t id = a.s.job_id;
        EXPECT_EQ(a.s.commit, commit_of[id]);
        const uint64_t expected = !requeued.empty() ? requeued.front() : *waiting.begin();
        EXPECT_EQ(id, expected);
        if (!requeued.empty()) requeued.pop_front();
        else waiting.erase(waiting.begin());
        running.insert(id);
        return Pick::kStart;
      });
    } else if (op < 8 && !running.empty()) {  // requeue a running job
      auto it = running.begin();
      std::advance(it, rng() % running.size());
      q.requeue(*it);
      requeued.push_front(*it);
      running.erase(it);
    } else {  // a job ends (cancelled while waiting, or finished)
      auto it = commit_of.begin();
      std::advance(it, rng() % commit_of.size());
      const uint64_t id = it->first;
      const std::string c = it->second;
      q.remove(id);
      waiting.erase(id);
      running.erase(id);
      requeued.erase(std::remove(requeued.begin(), requeued.end(), id), requeued.end());
      commit_of.erase(it);
      EXPECT_EQ(q.by_commit(c), 0u);
    }
    ASSERT_EQ(q.active(), commit_of.size()) << step;
    ASSERT_EQ(q.queued(), waiting.size() + requeued.size()) << step;
    if (step % 97 == 0) {
      for (const auto& [id, c] : commit_of) ASSERT_EQ(q.by_commit(c), id) << step;
    }
  }
  for (const auto& [id, c] : commit_of) EXPECT_EQ(q.by_commit(c), id);
  // Most jobs end: the index shrinks step by step and still finds the rest.
  while (commit_of.size() > 5) {
    q.remove(commit_of.begin()->first);
    commit_of.erase(commit_of.begin());
  }
  for (const auto& [id, c] : commit_of) EXPECT_EQ(q.by_commit(c), id);
}

// Issue 9: a million queued jobs must fit in 250 MB. A waiting job is a compact record plus
// its commit-index slots; this asserts the heap it takes, not a time.
TEST(JobQueue, AQueuedJobTakesAtMost200BytesOfHeap) {
  constexpr size_t kJobs = 100000;
  std::mt19937_64 rng(9);
  std::vector<msg::JobSummary> jobs(kJobs);
  for (size_t i = 0; i < kJobs; ++i) {
    jobs[i] = job(i + 1, hex_commit(rng));
    jobs[i].branch = i % 10 ? "main" : "release-" + std::to_string(i % 30);
    jobs[i].created_at_ms = 1700000000000 + static_cast<int64_t>(i);
  }
  auto heap = [] { return mallinfo2().uordblks; };
  JobQueue q;
  const size_t before = heap();
  for (const auto& s : jobs) q.add(s);
  const size_t after = heap();
  const double per_job = static_cast<double>(after - before) / kJobs;
  for (size_t i = 0; i < kJobs; ++i) ASSERT_EQ(q.by_commit(jobs[i].commit), i + 1);
  for (size_t i = 0; i < kJobs; ++i) q.remove(i + 1);
  const size_t emptied = heap();
  // An emptied deque keeps a block and its map, a hash table its buckets: a few KiB, against
  // the 5.8 MB the jobs took.
  EXPECT_LE(emptied, before + 64 * 1024) << "an empty queue gives its memory back";
  EXPECT_LE(per_job, 200.0);
  std::printf("JobQueue: %.1f heap bytes per queued job\n", per_job);
}

TEST(RunnerRegistry, PicksTheLeastBusyFreeRunnerAndAvoidsOnlyWhileAnotherCouldTakeIt) {
  RunnerRegistry reg;
  std::set<uint64_t> previous;
  reg.add("a", "pa", 1, 2, SteadyTime{}, 0, &previous).jobs = {1};
  reg.add("b", "pb", 2, 2, SteadyTime{}, 0, &previous);
  const std::string unnamed;
  const std::vector<std::string> none;
  const Needs any{unnamed, none};
  EXPECT_EQ(reg.pick(any, {}, SteadyTime{})->name, "b");
  EXPECT_EQ(reg.pick(any, {"b"}, SteadyTime{})->name, "a");
  reg.find("a")->jobs = {1, 2};
  EXPECT_EQ(reg.pick(any, {"b"}, SteadyTime{}), nullptr) << "a is full but will take it later";
  reg.find("a")->draining = true;
  EXPECT_EQ(reg.pick(any, {"b"}, SteadyTime{})->name, "b") << "nobody else could ever take it";
}

TEST(RunnerRegistry, OnlyARunnerThatServesTheRepositoryAndHasEveryLabelIsPicked) {
  RunnerRegistry reg;
  std::set<uint64_t> previous;
  Runner& a = reg.add("a", "pa", 1, 1, SteadyTime{}, 0, &previous);
  a.labels = {"linux", "gpu"};
  Runner& b = reg.add("b", "pb", 2, 1, SteadyTime{}, 0, &previous);
  b.labels = {"linux"};
  b.serves_all = true;
  const std::string unnamed, docs = "docs";
  const std::vector<std::string> gpu{"gpu"}, linux{"linux"};
  EXPECT_EQ(reg.pick(Needs{unnamed, gpu}, {}, SteadyTime{})->name, "a");
  EXPECT_EQ(reg.pick(Needs{docs, linux}, {}, SteadyTime{})->name, "b") << "only b serves named repositories";
  EXPECT_EQ(reg.pick(Needs{docs, gpu}, {}, SteadyTime{}), nullptr);
  EXPECT_EQ(reg.pick(Needs{docs, gpu}, {"b"}, SteadyTime{}), nullptr) << "avoid never widens who fits";
}

TEST(RunnerRegistry, ASessionIsFoundByPeerAndFdAndAnotherRegistrationReplacesIt) {
  RunnerRegistry reg;
  std::set<uint64_t> previous;
  reg.add("a", "p1", 7, 1, SteadyTime{}, 0, &previous).jobs = {4};
  EXPECT_EQ(reg.session("p1")->name, "a");
  EXPECT_EQ(reg.name_on_fd(7), "a");
  reg.add("a", "p2", 8, 1, SteadyTime{}, 0, &previous);
  EXPECT_EQ(previous, std::set<uint64_t>{4});
  EXPECT_EQ(reg.session("p1"), nullptr);
  EXPECT_EQ(reg.session("p2")->name, "a");
  std::set<uint64_t> jobs;
  EXPECT_TRUE(reg.remove("a", &jobs));
  EXPECT_FALSE(reg.remove("a", &jobs));
  EXPECT_EQ(reg.session("p2"), nullptr);
}

TEST(LiveOutput, KeepsTheNewestBytesSkipsRepeatsAndRestartsAfterAGap) {
  LiveOutput live(4);
  live.add(1, 1, 0, "abcd");
  live.add(1, 1, 2, "cdef");  // overlaps: only "ef" is new
  std::string data;
  uint64_t offset = 0;
  ASSERT_TRUE(live.read(1, 1, &offset, 100, &data));
  EXPECT_EQ(data, "abcdef");
  live.add(1, 1, 6, "ghij");  // past 2 * window: trimmed to the newest 4
  offset = 0;
  ASSERT_TRUE(live.read(1, 1, &offset, 100, &data));
  EXPECT_EQ(offset, 6u) << "moved into the window";
  EXPECT_EQ(data, "ghij");
  live.add(1, 1, 20, "xy");  // a gap
  offset = 0;
  ASSERT_TRUE(live.read(1, 1, &offset, 100, &data));
  EXPECT_EQ(offset, 20u);
  EXPECT_EQ(data, "xy");
  EXPECT_FALSE(live.read(1, 2, &offset, 100, &data)) << "nothing of attempt 2";
  live.add(1, 2, 0, "new");
  offset = 0;
  ASSERT_TRUE(live.read(1, 2, &offset, 100, &data));
  EXPECT_EQ(data, "new");
}

}  // namespace
}  // namespace simpleci::dispatcher
