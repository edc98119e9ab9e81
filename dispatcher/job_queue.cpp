#include "dispatcher/job_queue.h"

#include <algorithm>

namespace simpleci::dispatcher {

using msg::JobStatus;

void JobQueue::clear() {
  active_.clear();
  active_by_commit_.clear();
  queue_.clear();
  running_.clear();
  orphans_.clear();
}

size_t JobQueue::load(const std::vector<JobRow>& rows,
                      const std::function<bool(const std::string&, uint64_t)>& attach,
                      SteadyTime now) {
  clear();
  size_t orphans = 0;
  for (const JobRow& row : rows) {
    Active a;
    a.s = row.summary;
    const uint64_t id = a.s.job_id;
    if (a.s.status == JobStatus::kQueued) {
      queue_.push_back(id);
    } else {
      running_.insert(id);
      if (!attach(a.s.runner, id)) {
        a.orphaned = true;
        a.orphan_since = now;
        orphans_[a.s.runner].insert(id);
        ++orphans;
      }
    }
    active_by_commit_[a.s.commit] = id;
    active_[id] = std::move(a);
  }
  return orphans;
}

Active* JobQueue::find(uint64_t id) {
  auto it = active_.find(id);
  return it == active_.end() ? nullptr : &it->second;
}

uint64_t JobQueue::by_commit(const std::string& commit) const {
  auto it = active_by_commit_.find(commit);
  return it == active_by_commit_.end() ? 0 : it->second;
}

void JobQueue::add(msg::JobSummary s) {
  const uint64_t id = s.job_id;
  s.status = JobStatus::kQueued;
  active_by_commit_[s.commit] = id;
  active_[id] = Active{std::move(s), {}, false, {}};
  queue_.push_back(id);
}

void JobQueue::walk_queue(size_t scan, const std::function<Pick(Active&)>& visit) {
  size_t skipped = 0;
  auto pos = queue_.begin();
  while (pos != queue_.end() && skipped < scan) {
    const uint64_t id = *pos;
    Active& a = active_.at(id);
    const Pick p = visit(a);
    if (p == Pick::kStop) return;
    if (p == Pick::kSkip) {
      ++pos;
      ++skipped;
      continue;
    }
    pos = queue_.erase(pos);
    a.s.status = JobStatus::kRunning;
    running_.insert(id);
  }
}

void JobQueue::requeue(uint64_t id) {
  Active& a = active_.at(id);
  unorphan(id, a);
  running_.erase(id);
  a.s.status = JobStatus::kQueued;
  a.s.runner.clear();
  a.s.started_at_ms = 0;
  queue_.push_front(id);
}

void JobQueue::remove(uint64_t id) {
  auto it = active_.find(id);
  if (it == active_.end()) return;
  if (it->second.s.status == JobStatus::kQueued) {
    queue_.erase(std::find(queue_.begin(), queue_.end(), id));
  }
  unorphan(id, it->second);
  running_.erase(id);
  active_by_commit_.erase(it->second.s.commit);
  active_.erase(it);
}

void JobQueue::unorphan(uint64_t id) {
  if (Active* a = find(id)) unorphan(id, *a);
}

void JobQueue::unorphan(uint64_t id, Active& a) {
  if (!a.orphaned) return;
  a.orphaned = false;
  auto o = orphans_.find(a.s.runner);
  if (o == orphans_.end()) return;
  o->second.erase(id);
  if (o->second.empty()) orphans_.erase(o);
}

std::set<uint64_t> JobQueue::orphans_of(const std::string& runner) const {
  auto o = orphans_.find(runner);
  return o == orphans_.end() ? std::set<uint64_t>{} : o->second;
}

}  // namespace simpleci::dispatcher
