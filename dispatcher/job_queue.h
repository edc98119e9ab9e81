// JobQueue: the dispatcher's in-memory view of the active (queued and running) jobs, and the
// order queued jobs run in. It answers "which jobs wait, in what order, and which run where".
//
// The queue runs requeued jobs first (the latest requeued at the very front), then the jobs that
// never ran. Those wait in one lane per repository, lowest id first in each (the order of the
// store's queue_pos, store.cpp); the lanes take turns, one started job each, so a burst of
// commits to one repository delays another's next job by one turn at most (docs/MULTI.md).
//
// A queue can hold millions of jobs, so a job that never ran waits as a compact record (Waiting,
// 64 bytes: id, creation time, commit as binary bytes, branch and job spec -- repository, job
// name, labels, timeout -- as indexes into tables of interned, reference-counted values) in its
// lane's deque, sorted by id; a compact hash index by (repository, commit) sits beside them (12
// bytes a slot). A job becomes a full Active (summary, orphan state,
// runners to avoid) when it starts running; a requeued job stays one (there are at most as many
// as the jobs that ran, bounded by the runners' slots). So a queued job costs about 60 bytes of
// heap (85 of RSS: `simpleci-bench queue`), and a running one a few hundred.
//
// It owns every active job and the indexes beside it: the waiting records, the requeued jobs in
// front of them, the running set (ordered by id: STATUS lists the lowest), the running jobs found
// in the store after a restart whose runner has not registered yet (orphans, by runner name), and
// the active job of each commit. Invariants, kept by every call:
//   - a job is active exactly when it is queued or running; active() counts them;
//   - a queued job is either a waiting record (never ran; attempt 0) or a requeued Active in
//     front of them (status queued), never both; a running job is an Active in running() and
//     not queued;
//   - each lane's waiting records are sorted by id; a record marked removed is no job (it is
//     dropped lazily);
//   - by_commit(c, r) is an active job of commit c in repository r, 0 when it has none (a commit
//     has one job per name in .simpleci/jobs, or one unnamed job);
//   - a lane's running count is how many of running() are jobs of its repository;
//   - a job is an orphan exactly when it is running, marked orphaned, and listed under its runner.
// Keeping the indexes makes STATUS, REGISTER and tick cost O(runners + running jobs), never
// O(queue); COMMIT's duplicate check and find() of a waiting job cost O(log queue). Pure
// bookkeeping: the store and the runners are the Dispatcher's business.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "dispatcher/job_store.h"
#include "messages/messages.h"

namespace simpleci::dispatcher {

struct Active {  // a queued or running job
  msg::JobSummary s;
  uint32_t timeout_s = 0;  // its own (settings line); 0: the dispatcher's --job-timeout
  SteadyTime orphan_since{};  // running without a live runner session (after a restart)
  bool orphaned = false;
  std::set<std::string> avoid;  // runners that could not set this job up
};

class JobQueue {
 public:
  // Replaces everything with the store's active rows (queued ones in queue order). A running row
  // whose runner attach() accepts (its session exists and now holds the job) is running there; the
  // others become orphans since `now`. Returns how many became orphans.
  size_t load(const std::vector<JobRow>& rows,
              const std::function<bool(const std::string& runner, uint64_t id)>& attach,
              SteadyTime now);
  // The same one row at a time, so a store of a million queued jobs is never held twice: clear(),
  // then load_row() for each active row in the store's order. `attached`: a running row's runner
  // holds it; otherwise it is an orphan since `now` (returns true then).
  void clear();
  bool load_row(const JobRow& row, bool attached, SteadyTime now);

  // The active job with this id, nullptr when it is not active. A waiting job is expanded into a
  // copy that stays valid until the next call to this JobQueue (read it, or copy what is needed).
  const Active* find(uint64_t id) const;
  // A running (or requeued) job by id; throws std::out_of_range for any other.
  const Active& at(uint64_t id) const { return active_.at(id); }
  // An active job of a commit in a repository ("" the unnamed one); 0 when it has none.
  uint64_t by_commit(const std::string& commit, const std::string& repo = {}) const;

  // Every active job of a commit in a repository.
  std::vector<uint64_t> ids_of_commit(const std::string& commit, const std::string& repo = {}) const;

  // A new job (status queued, never run) in its repository's lane: at the back, since ids grow.
  void add(msg::JobSummary s, uint32_t timeout_s = 0);

  // What walk_queue's visitor decides for a queued job.
  enum class Pick {
    kStart,      // it starts (the visitor has set its attempt, runner and start time)
    kSkip,       // it stays queued; look at the next one
    kSkipLane,   // it stays queued and so does the rest of its repository's lane this walk
    kStop,       // the walk ends (no free runner at all)
  };
  // Visits queued jobs until the visitor says kStop, the queue ends or `scan` jobs of one lane
  // (or of the requeued ones) were skipped: first the requeued jobs in order, then the lanes in
  // turn, from where the last walk left off, each turn ending at its lane's first started job.
  // kStart moves the job from the queue to the running set. The visitor may change a job only
  // when it answers kStart (a waiting job is visited as a copy).
  void walk_queue(size_t scan, const std::function<Pick(Active&)>& visit);
  // Running jobs of a repository.
  size_t running_in(const std::string& repo) const;
  // The repositories with active jobs, and the ids of one's active jobs (O(its jobs + active)).
  std::set<std::string> repos() const;
  std::vector<uint64_t> ids_in(const std::string& repo) const;

  // A running job goes back to the front of the queue (runner and start time cleared).
  void requeue(uint64_t id);
  // A job reached its final state: it leaves the queue or the running set and every index.
  void remove(uint64_t id);
  // A running job's runner claimed it: it no longer waits for that runner to come back.
  void unorphan(uint64_t id);
  // A running job prefers other runners than this one from now on (its setup failed there).
  void avoid(uint64_t id, const std::string& runner);

  // Running jobs found in the store whose runner `runner` has not registered since.
  std::set<uint64_t> orphans_of(const std::string& runner) const;
  // The first `limit` queued jobs in queue order (requeued ones, then the lanes' jobs taking
  // turns as walk_queue would): O(limit + lanes), plus the waiting records marked removed on the way.
  // With only_repo, only that repository's jobs.
  std::vector<msg::JobSummary> first_queued(size_t limit, const std::string* only_repo = nullptr) const;
  // Running jobs, lowest id first.
  const std::set<uint64_t>& running() const { return running_; }
  size_t queued() const { return front_.size() + waiting_live_; }
  size_t active() const { return active_.size() + waiting_live_; }

  // Strings interned with a reference count, each with a value made from its key once: the
  // branches and job specs of waiting jobs, so a million queued jobs hold a few copies of them.
  template <class T>
  class Interned {
   public:
    uint32_t add(const std::string& key, const std::function<T()>& make);
    void release(uint32_t index);
    const std::string& key(uint32_t index) const { return at_[index]->first; }
    const T& value(uint32_t index) const { return at_[index]->second.value; }

   private:
    struct Entry {
      T value{};
      uint32_t index = 0, refs = 0;
    };
    using Node = typename std::unordered_map<std::string, Entry>::value_type;
    std::unordered_map<std::string, Entry> map_;
    std::vector<Node*> at_;  // by index; nullptr: free
    std::vector<uint32_t> free_;
  };

 private:
  // A queued job that never ran. kOddCommit: the commit is not lowercase hex of at most 64
  // digits (only tests make such jobs) and sits in odd_commits_.
  struct Waiting {
    uint64_t id = 0;
    int64_t created_at_ms = 0;
    uint32_t branch = 0;        // index into branches_
    uint32_t spec = 0;          // index into specs_
    uint16_t lane = 0;          // index into lanes_
    uint8_t commit_size = 0;    // bytes of commit[] in use, or kOddCommit
    bool removed = false;       // no longer a job: dropped when it reaches the front, or compacted
    uint8_t commit[32] = {};
  };
  static constexpr uint8_t kOddCommit = 0xff;
  // What a job asks for beside its commit and branch.
  struct Spec {
    std::string job_name;
    std::vector<std::string> labels;
    uint32_t timeout_s = 0;
  };
  // A repository's jobs that never ran.
  struct Lane {
    std::string repo;
    std::deque<Waiting> waiting;  // sorted by id
    size_t live = 0;              // records not removed
    size_t running = 0;           // jobs of this repository in running_
  };

  void unorphan(uint64_t id, Active& a);
  Lane& lane(const std::string& repo);
  const Lane* find_lane(const std::string& repo) const;
  void count_running(const std::string& repo, int delta);
  // Waiting records.
  Waiting* waiting(uint64_t id);
  const Waiting* waiting(uint64_t id) const;
  static const Waiting* waiting_in(const Lane& l, uint64_t id);
  void insert_waiting(const msg::JobSummary& s, uint32_t timeout_s);
  void expand(const Waiting& w, Active* a) const;
  std::string commit_of(const Waiting& w) const;
  void drop_waiting(Waiting& w);  // marks it removed and takes it out of the indexes
  void tidy_waiting(Lane& l);     // drops removed records at the front, compacts when many
  // Visits one lane's jobs (as walk_queue); true when one started, *stop when the walk ends.
  bool walk_lane(Lane& l, size_t scan, const std::function<Pick(Active&)>& visit, bool* stop);
  // The commit index of waiting jobs: open addressing, linear probing, at most 3/4 full; a slot
  // holds a job id (0: empty) and its (repository, commit)'s hash (so probes and resizes need no
  // record).
  uint32_t hash_of(const Waiting& w) const;
  // The first waiting job of the commit, or with `all` every one of them appended there (then 0).
  uint64_t find_commit(const std::string& commit, const std::string& repo,
                       std::vector<uint64_t>* all = nullptr) const;
  void index_commit(const Waiting& w);
  void unindex_commit(const Waiting& w);
  void grow_index();
  void shrink_index();
  void resize_index(size_t slots);

  // Running and requeued jobs.
  std::unordered_map<uint64_t, Active> active_;
  std::deque<uint64_t> front_;  // requeued jobs, in queue order
  std::set<uint64_t> running_;
  std::unordered_map<std::string, std::set<uint64_t>> orphans_;  // by runner name
  // Of active_, by repository + '\n' + commit.
  std::unordered_multimap<std::string, uint64_t> active_by_commit_;
  // Jobs that never ran.
  std::vector<Lane> lanes_;  // never shrinks: one per repository that ever had a job here
  size_t next_lane_ = 0;     // where the next walk starts
  size_t waiting_live_ = 0;  // records not removed, in all lanes
  std::vector<uint64_t> slot_ids_;      // size 0 or a power of two
  std::vector<uint32_t> slot_hashes_;   // beside slot_ids_
  size_t slots_used_ = 0;
  struct NoValue {};
  Interned<NoValue> branches_;
  Interned<Spec> specs_;
  std::unordered_map<uint64_t, std::string> odd_commits_;
  mutable Active view_;  // find()'s copy of a waiting job
};

}  // namespace simpleci::dispatcher
