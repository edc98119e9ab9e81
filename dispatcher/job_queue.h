// JobQueue: the dispatcher's in-memory view of the active (queued and running) jobs, and the
// order queued jobs run in. It answers "which jobs wait, in what order, and which run where".
//
// It owns every active job's summary and the indexes beside it: the queue (oldest first, a
// requeued job at the front), the running set (ordered by id: STATUS lists the lowest), the
// running jobs found in the store after a restart whose runner has not registered yet (orphans,
// by runner name), and the active job of each commit. Invariants, kept by every call:
//   - a job is in active() exactly when it is queued or running;
//   - a queued job is in the queue once and not running; a running job is in running() and not
//     in the queue;
//   - by_commit(c) is the active job of commit c (at most one per commit);
//   - a job is an orphan exactly when it is running, marked orphaned, and listed under its runner.
// Keeping the indexes makes STATUS, REGISTER and tick cost O(runners + running jobs), never
// O(queue). Pure bookkeeping: the store and the runners are the Dispatcher's business.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <set>
#include <string>
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

  // The active job with this id, nullptr when it is not active.
  Active* find(uint64_t id);
  const Active& at(uint64_t id) const { return active_.at(id); }
  // The active job of a commit; 0 when it has none.
  uint64_t by_commit(const std::string& commit) const;

  // A new job (status queued) at the back of the queue.
  void add(msg::JobSummary s);

  // What walk_queue's visitor decides for a queued job.
  enum class Pick { kStart, kSkip, kStop };
  // Visits the queued jobs oldest first until the visitor says kStop, the queue ends or `scan`
  // jobs were skipped. kStart moves the job from the queue to the running set (the visitor has
  // set its attempt, runner and start time); kSkip leaves it queued for a later walk.
  void walk_queue(size_t scan, const std::function<Pick(Active&)>& visit);

  // A running job goes back to the front of the queue (runner and start time cleared).
  void requeue(uint64_t id);
  // A job reached its final state: it leaves the queue or the running set and every index.
  void remove(uint64_t id);
  // A running job's runner claimed it: it no longer waits for that runner to come back.
  void unorphan(uint64_t id);

  // Running jobs found in the store whose runner `runner` has not registered since.
  std::set<uint64_t> orphans_of(const std::string& runner) const;
  // Running jobs, lowest id first.
  const std::set<uint64_t>& running() const { return running_; }
  size_t queued() const { return queue_.size(); }
  size_t active() const { return active_.size(); }

 private:
  void clear();
  void unorphan(uint64_t id, Active& a);

  std::unordered_map<uint64_t, Active> active_;
  std::deque<uint64_t> queue_;
  std::set<uint64_t> running_;
  std::unordered_map<std::string, std::set<uint64_t>> orphans_;  // by runner name
  std::unordered_map<std::string, uint64_t> active_by_commit_;
};

}  // namespace simpleci::dispatcher
