// JobQueue: the dispatcher's in-memory view of the active (queued and running) jobs, and the
// order queued jobs run in. It answers "which jobs wait, in what order, and which run where".
//
// The queue runs requeued jobs first (the latest requeued at the very front), then the jobs that
// never ran, lowest id first: the order of the store's queue_pos (store.cpp).
//
// A queue can hold millions of jobs, so a job that never ran waits as a compact record (Waiting,
// 56 bytes: id, creation time, commit as binary bytes, branch as an index into a table of
// interned, reference-counted names) in `waiting_`, a deque sorted by id; a compact hash index by
// commit sits beside it (12 bytes a slot). A job becomes a full Active (summary, orphan state,
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
//   - waiting records are sorted by id; a record marked removed is no job (it is dropped lazily);
//   - by_commit(c) is the active job of commit c (at most one per commit);
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
  // The active job of a commit; 0 when it has none.
  uint64_t by_commit(const std::string& commit) const;

  // A new job (status queued, never run) in the queue: at the back, since ids grow.
  void add(msg::JobSummary s);

  // What walk_queue's visitor decides for a queued job.
  enum class Pick { kStart, kSkip, kStop };
  // Visits the queued jobs in queue order until the visitor says kStop, the queue ends or `scan`
  // jobs were skipped. kStart moves the job from the queue to the running set (the visitor has
  // set its attempt, runner and start time); kSkip leaves it queued for a later walk. The visitor
  // may change a job only when it answers kStart (a waiting job is visited as a copy).
  void walk_queue(size_t scan, const std::function<Pick(Active&)>& visit);

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
  // The first `limit` queued jobs in queue order (requeued ones, then the ones that never ran):
  // O(limit), plus the waiting records marked removed on the way.
  std::vector<msg::JobSummary> first_queued(size_t limit) const;
  // Running jobs, lowest id first.
  const std::set<uint64_t>& running() const { return running_; }
  size_t queued() const { return front_.size() + waiting_live_; }
  size_t active() const { return active_.size() + waiting_live_; }

 private:
  // A queued job that never ran. kOddCommit: the commit is not lowercase hex of at most 64
  // digits (only tests make such jobs) and sits in odd_commits_.
  struct Waiting {
    uint64_t id = 0;
    int64_t created_at_ms = 0;
    uint32_t branch = 0;        // index into names_
    uint8_t commit_size = 0;    // bytes of commit[] in use, or kOddCommit
    bool removed = false;       // no longer a job: dropped when it reaches the front, or compacted
    uint8_t commit[32] = {};
  };
  static constexpr uint8_t kOddCommit = 0xff;
  // An interned branch name and how many waiting jobs use it.
  struct Name {
    uint32_t index = 0;
    uint32_t refs = 0;
  };
  using NameNode = std::unordered_map<std::string, Name>::value_type;

  void unorphan(uint64_t id, Active& a);
  // Waiting records.
  Waiting* waiting(uint64_t id);
  const Waiting* waiting(uint64_t id) const;
  void insert_waiting(const msg::JobSummary& s);
  void expand(const Waiting& w, Active* a) const;
  std::string commit_of(const Waiting& w) const;
  void drop_waiting(Waiting& w);  // marks it removed and takes it out of the indexes
  void tidy_waiting();            // drops removed records at the front, compacts when many
  uint32_t intern(const std::string& name);
  void release(uint32_t index);
  // The commit index of waiting jobs: open addressing, linear probing, at most 3/4 full; a slot
  // holds a job id (0: empty) and its commit's hash (so probes and resizes need no record).
  uint32_t hash_of(const Waiting& w) const;
  uint64_t find_commit(const std::string& commit) const;
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
  std::unordered_map<std::string, uint64_t> active_by_commit_;   // of active_
  // Jobs that never ran.
  std::deque<Waiting> waiting_;  // sorted by id
  size_t waiting_live_ = 0;      // records not removed
  std::vector<uint64_t> slot_ids_;      // size 0 or a power of two
  std::vector<uint32_t> slot_hashes_;   // beside slot_ids_
  size_t slots_used_ = 0;
  std::unordered_map<std::string, Name> names_;
  std::vector<NameNode*> name_at_;        // by index; nullptr: free
  std::vector<uint32_t> free_names_;
  std::unordered_map<uint64_t, std::string> odd_commits_;
  mutable Active view_;  // find()'s copy of a waiting job
};

}  // namespace simpleci::dispatcher
