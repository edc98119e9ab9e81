#include "dispatcher/job_queue.h"

#include <algorithm>
#include <cstring>

namespace simpleci::dispatcher {

using msg::JobStatus;

namespace {

constexpr size_t kMinSlots = 64;
constexpr char kHex[] = "0123456789abcdef";

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Lowercase hex of at most 64 digits, in pairs, as bytes; false for any other text.
bool hex_to_bytes(std::string_view hex, uint8_t* out, uint8_t* size) {
  if (hex.size() % 2 != 0 || hex.size() > 64) return false;
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = hex_digit(hex[i]), lo = hex_digit(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i / 2] = static_cast<uint8_t>(hi << 4 | lo);
  }
  *size = static_cast<uint8_t>(hex.size() / 2);
  return true;
}

uint32_t commit_hash(std::string_view bytes, bool odd) {
  const size_t h = std::hash<std::string_view>{}(bytes);
  return static_cast<uint32_t>(h ^ (h >> 32)) ^ (odd ? 0x9e3779b9u : 0u);
}

}  // namespace

// ---- loading ----------------------------------------------------------------------------

void JobQueue::clear() {
  active_ = {};
  front_ = {};
  running_ = {};
  orphans_ = {};
  active_by_commit_ = {};
  waiting_ = {};
  waiting_live_ = 0;
  slot_ids_ = {};
  slot_hashes_ = {};
  slots_used_ = 0;
  names_ = {};
  name_at_ = {};
  free_names_ = {};
  odd_commits_ = {};
}

size_t JobQueue::load(const std::vector<JobRow>& rows,
                      const std::function<bool(const std::string&, uint64_t)>& attach,
                      SteadyTime now) {
  clear();
  size_t orphans = 0;
  for (const JobRow& row : rows) {
    const msg::JobSummary& s = row.summary;
    const bool attached = s.status != JobStatus::kQueued && attach(s.runner, s.job_id);
    orphans += load_row(row, attached, now) ? 1 : 0;
  }
  return orphans;
}

bool JobQueue::load_row(const JobRow& row, bool attached, SteadyTime now) {
  const msg::JobSummary& s = row.summary;
  if (s.status == JobStatus::kQueued && s.attempt == 0) {  // never ran
    insert_waiting(s);
    return false;
  }
  const uint64_t id = s.job_id;
  Active a;
  a.s = s;
  bool orphan = false;
  if (s.status == JobStatus::kQueued) {  // requeued: the store lists these first
    front_.push_back(id);
  } else {
    running_.insert(id);
    if (!attached) {
      a.orphaned = true;
      a.orphan_since = now;
      orphans_[a.s.runner].insert(id);
      orphan = true;
    }
  }
  active_by_commit_[a.s.commit] = id;
  active_[id] = std::move(a);
  return orphan;
}

// ---- lookups ----------------------------------------------------------------------------

const Active* JobQueue::find(uint64_t id) const {
  if (auto it = active_.find(id); it != active_.end()) return &it->second;
  const Waiting* w = waiting(id);
  if (!w) return nullptr;
  expand(*w, &view_);
  return &view_;
}

uint64_t JobQueue::by_commit(const std::string& commit) const {
  auto it = active_by_commit_.find(commit);
  return it == active_by_commit_.end() ? find_commit(commit) : it->second;
}

std::set<uint64_t> JobQueue::orphans_of(const std::string& runner) const {
  auto o = orphans_.find(runner);
  return o == orphans_.end() ? std::set<uint64_t>{} : o->second;
}

// ---- changes ----------------------------------------------------------------------------

void JobQueue::add(msg::JobSummary s) {
  s.status = JobStatus::kQueued;
  s.attempt = 0;
  insert_waiting(s);
}

void JobQueue::walk_queue(size_t scan, const std::function<Pick(Active&)>& visit) {
  size_t skipped = 0;
  for (auto pos = front_.begin(); pos != front_.end() && skipped < scan;) {
    const uint64_t id = *pos;
    Active& a = active_.at(id);
    const Pick p = visit(a);
    if (p == Pick::kStop) return;
    if (p == Pick::kSkip) {
      ++pos;
      ++skipped;
      continue;
    }
    pos = front_.erase(pos);
    a.s.status = JobStatus::kRunning;
    running_.insert(id);
  }
  Active a;
  for (size_t i = 0; i < waiting_.size() && skipped < scan; ++i) {
    Waiting& w = waiting_[i];
    if (w.removed) continue;
    expand(w, &a);
    const Pick p = visit(a);
    if (p == Pick::kStop) break;
    if (p == Pick::kSkip) {
      ++skipped;
      continue;
    }
    const uint64_t id = w.id;
    drop_waiting(w);
    a.s.status = JobStatus::kRunning;
    active_by_commit_[a.s.commit] = id;
    running_.insert(id);
    active_[id] = std::move(a);  // a is refilled by the next expand()
  }
  tidy_waiting();
}

std::vector<msg::JobSummary> JobQueue::first_queued(size_t limit) const {
  std::vector<msg::JobSummary> out;
  for (auto it = front_.begin(); it != front_.end() && out.size() < limit; ++it) {
    out.push_back(active_.at(*it).s);
  }
  Active a;
  for (auto it = waiting_.begin(); it != waiting_.end() && out.size() < limit; ++it) {
    if (it->removed) continue;
    expand(*it, &a);
    out.push_back(a.s);
  }
  return out;
}

void JobQueue::requeue(uint64_t id) {
  Active& a = active_.at(id);
  unorphan(id, a);
  running_.erase(id);
  a.s.status = JobStatus::kQueued;
  a.s.runner.clear();
  a.s.started_at_ms = 0;
  front_.push_front(id);
}

void JobQueue::remove(uint64_t id) {
  auto it = active_.find(id);
  if (it == active_.end()) {
    if (Waiting* w = waiting(id)) {
      drop_waiting(*w);
      tidy_waiting();
    }
    return;
  }
  if (it->second.s.status == JobStatus::kQueued) {
    front_.erase(std::find(front_.begin(), front_.end(), id));
  }
  unorphan(id, it->second);
  running_.erase(id);
  active_by_commit_.erase(it->second.s.commit);
  active_.erase(it);
}

void JobQueue::unorphan(uint64_t id) {
  if (auto it = active_.find(id); it != active_.end()) unorphan(id, it->second);
}

void JobQueue::unorphan(uint64_t id, Active& a) {
  if (!a.orphaned) return;
  a.orphaned = false;
  auto o = orphans_.find(a.s.runner);
  if (o == orphans_.end()) return;
  o->second.erase(id);
  if (o->second.empty()) orphans_.erase(o);
}

void JobQueue::avoid(uint64_t id, const std::string& runner) {
  if (auto it = active_.find(id); it != active_.end()) it->second.avoid.insert(runner);
}

// ---- waiting records --------------------------------------------------------------------

const JobQueue::Waiting* JobQueue::waiting(uint64_t id) const {
  auto it = std::lower_bound(waiting_.begin(), waiting_.end(), id,
                             [](const Waiting& w, uint64_t v) { return w.id < v; });
  return it != waiting_.end() && it->id == id && !it->removed ? &*it : nullptr;
}

JobQueue::Waiting* JobQueue::waiting(uint64_t id) {
  return const_cast<Waiting*>(std::as_const(*this).waiting(id));
}

void JobQueue::insert_waiting(const msg::JobSummary& s) {
  Waiting w;
  w.id = s.job_id;
  w.created_at_ms = s.created_at_ms;
  w.branch = intern(s.branch);
  if (!hex_to_bytes(s.commit, w.commit, &w.commit_size)) {
    w.commit_size = kOddCommit;
    odd_commits_[w.id] = s.commit;
  }
  grow_index();
  if (waiting_.empty() || waiting_.back().id < w.id) {
    waiting_.push_back(w);
  } else {  // ids come in growing order from the store; anything else keeps the order by id
    auto pos = std::lower_bound(waiting_.begin(), waiting_.end(), w.id,
                                [](const Waiting& x, uint64_t v) { return x.id < v; });
    if (pos != waiting_.end() && pos->id == w.id) *pos = w;  // only a removed record
    else waiting_.insert(pos, w);
  }
  ++waiting_live_;
  index_commit(w);
}

void JobQueue::expand(const Waiting& w, Active* a) const {
  msg::JobSummary& s = a->s;
  s.job_id = w.id;
  s.commit = commit_of(w);
  s.branch = name_at_[w.branch]->first;
  s.status = JobStatus::kQueued;
  s.exit_code = -1;
  s.duration_ms = 0;
  s.runner.clear();
  s.attempt = 0;
  s.created_at_ms = w.created_at_ms;
  s.started_at_ms = 0;
  s.finished_at_ms = 0;
  s.truncated = false;
  a->orphan_since = {};
  a->orphaned = false;
  a->avoid.clear();
}

std::string JobQueue::commit_of(const Waiting& w) const {
  if (w.commit_size == kOddCommit) return odd_commits_.at(w.id);
  std::string hex(size_t{w.commit_size} * 2, '0');
  for (size_t i = 0; i < w.commit_size; ++i) {
    hex[2 * i] = kHex[w.commit[i] >> 4];
    hex[2 * i + 1] = kHex[w.commit[i] & 0xf];
  }
  return hex;
}

void JobQueue::drop_waiting(Waiting& w) {
  unindex_commit(w);
  release(w.branch);
  if (w.commit_size == kOddCommit) odd_commits_.erase(w.id);
  w.removed = true;
  --waiting_live_;
  shrink_index();
}

// Removed records leave at once from the front (as dispatch takes jobs), and by a compaction
// once they are most of the deque (cancelled jobs in the middle), so memory follows the queue.
void JobQueue::tidy_waiting() {
  while (!waiting_.empty() && waiting_.front().removed) waiting_.pop_front();
  if (waiting_live_ == 0) {
    std::deque<Waiting>().swap(waiting_);
    return;
  }
  const size_t removed = waiting_.size() - waiting_live_;
  if (removed > kMinSlots && removed > waiting_live_) {
    std::erase_if(waiting_, [](const Waiting& w) { return w.removed; });
    waiting_.shrink_to_fit();
  }
}

uint32_t JobQueue::intern(const std::string& name) {
  auto [it, fresh] = names_.try_emplace(name);
  if (fresh) {
    if (free_names_.empty()) {
      it->second.index = static_cast<uint32_t>(name_at_.size());
      name_at_.push_back(&*it);
    } else {
      it->second.index = free_names_.back();
      free_names_.pop_back();
      name_at_[it->second.index] = &*it;
    }
  }
  ++it->second.refs;
  return it->second.index;
}

void JobQueue::release(uint32_t index) {
  NameNode* n = name_at_[index];
  if (--n->second.refs > 0) return;
  name_at_[index] = nullptr;
  free_names_.push_back(index);
  names_.erase(names_.find(n->first));
  if (names_.empty()) {
    name_at_ = {};
    free_names_ = {};
  }
}

// ---- the commit index of waiting jobs -----------------------------------------------------

uint32_t JobQueue::hash_of(const Waiting& w) const {
  if (w.commit_size == kOddCommit) return commit_hash(odd_commits_.at(w.id), true);
  return commit_hash({reinterpret_cast<const char*>(w.commit), w.commit_size}, false);
}

uint64_t JobQueue::find_commit(const std::string& commit) const {
  if (slots_used_ == 0) return 0;
  uint8_t bytes[32];
  uint8_t size = 0;
  const bool odd = !hex_to_bytes(commit, bytes, &size);
  const uint32_t h =
      odd ? commit_hash(commit, true)
          : commit_hash({reinterpret_cast<const char*>(bytes), size}, false);
  const size_t mask = slot_ids_.size() - 1;
  for (size_t i = h & mask; slot_ids_[i] != 0; i = (i + 1) & mask) {
    if (slot_hashes_[i] != h) continue;
    const Waiting* w = waiting(slot_ids_[i]);
    if (!w) continue;
    const bool same = odd ? w->commit_size == kOddCommit && odd_commits_.at(w->id) == commit
                          : w->commit_size == size && std::memcmp(w->commit, bytes, size) == 0;
    if (same) return w->id;
  }
  return 0;
}

void JobQueue::index_commit(const Waiting& w) {
  const uint32_t h = hash_of(w);
  const size_t mask = slot_ids_.size() - 1;
  size_t i = h & mask;
  while (slot_ids_[i] != 0) i = (i + 1) & mask;
  slot_ids_[i] = w.id;
  slot_hashes_[i] = h;
  ++slots_used_;
}

// Linear probing with backward-shift deletion: no tombstones, so probes stay short.
void JobQueue::unindex_commit(const Waiting& w) {
  const uint32_t h = hash_of(w);
  const size_t mask = slot_ids_.size() - 1;
  size_t i = h & mask;
  while (slot_ids_[i] != w.id) {
    if (slot_ids_[i] == 0) return;
    i = (i + 1) & mask;
  }
  for (size_t j = (i + 1) & mask; slot_ids_[j] != 0; j = (j + 1) & mask) {
    const size_t home = slot_hashes_[j] & mask;
    // The entry at j may move to the hole at i unless its home lies cyclically in (i, j].
    const bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (stays) continue;
    slot_ids_[i] = slot_ids_[j];
    slot_hashes_[i] = slot_hashes_[j];
    i = j;
  }
  slot_ids_[i] = 0;
  --slots_used_;
}

// At most 3/4 full: grows (doubling) before an insert would pass that.
void JobQueue::grow_index() {
  if ((slots_used_ + 1) * 4 > slot_ids_.size() * 3) {
    resize_index(std::max(kMinSlots, slot_ids_.size() * 2));
  }
}

// At least 1/8 full, or empty and freed.
void JobQueue::shrink_index() {
  if (slots_used_ == 0) {
    slot_ids_ = {};
    slot_hashes_ = {};
  } else if (slot_ids_.size() > kMinSlots && slots_used_ * 8 < slot_ids_.size()) {
    resize_index(slot_ids_.size() / 2);
  }
}

void JobQueue::resize_index(size_t slots) {
  std::vector<uint64_t> ids(slots, 0);
  std::vector<uint32_t> hashes(slots, 0);
  const size_t mask = slots - 1;
  for (size_t k = 0; k < slot_ids_.size(); ++k) {
    if (slot_ids_[k] == 0) continue;
    size_t i = slot_hashes_[k] & mask;
    while (ids[i] != 0) i = (i + 1) & mask;
    ids[i] = slot_ids_[k];
    hashes[i] = slot_hashes_[k];
  }
  slot_ids_.swap(ids);
  slot_hashes_.swap(hashes);
}

}  // namespace simpleci::dispatcher
