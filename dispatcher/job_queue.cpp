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

uint32_t commit_hash(std::string_view bytes, bool odd, size_t lane) {
  const size_t h = std::hash<std::string_view>{}(bytes) ^ (lane * 0x9e3779b97f4a7c15ull);
  return static_cast<uint32_t>(h ^ (h >> 32)) ^ (odd ? 0x9e3779b9u : 0u);
}

std::string commit_key(const std::string& repo, const std::string& commit) { return repo + '\n' + commit; }

// The interning key of a job spec: its fields, none of which holds a newline.
std::string spec_key(const msg::JobSummary& s, uint32_t timeout_s) {
  std::string key = s.job_name + '\n' + std::to_string(timeout_s);
  for (const std::string& l : s.labels) key += '\n' + l;
  return key;
}

}  // namespace

// ---- interned values ----------------------------------------------------------------------

template <class T>
uint32_t JobQueue::Interned<T>::add(const std::string& key, const std::function<T()>& make) {
  auto [it, fresh] = map_.try_emplace(key);
  if (fresh) {
    it->second.value = make();
    if (free_.empty()) {
      it->second.index = static_cast<uint32_t>(at_.size());
      at_.push_back(&*it);
    } else {
      it->second.index = free_.back();
      free_.pop_back();
      at_[it->second.index] = &*it;
    }
  }
  ++it->second.refs;
  return it->second.index;
}

template <class T>
void JobQueue::Interned<T>::release(uint32_t index) {
  Node* n = at_[index];
  if (--n->second.refs > 0) return;
  at_[index] = nullptr;
  free_.push_back(index);
  map_.erase(map_.find(n->first));
  if (map_.empty()) {
    at_ = {};
    free_ = {};
  }
}

// ---- lanes --------------------------------------------------------------------------------

JobQueue::Lane& JobQueue::lane(const std::string& repo) {
  for (Lane& l : lanes_) {
    if (l.repo == repo) return l;
  }
  lanes_.push_back(Lane{repo, {}, 0, 0});
  return lanes_.back();
}

const JobQueue::Lane* JobQueue::find_lane(const std::string& repo) const {
  for (const Lane& l : lanes_) {
    if (l.repo == repo) return &l;
  }
  return nullptr;
}

void JobQueue::count_running(const std::string& repo, int delta) {
  Lane& l = lane(repo);
  l.running = delta > 0 ? l.running + 1 : (l.running > 0 ? l.running - 1 : 0);
}

std::set<std::string> JobQueue::repos() const {
  std::set<std::string> out;
  for (const Lane& l : lanes_) {
    if (l.live > 0) out.insert(l.repo);
  }
  for (const auto& [id, a] : active_) out.insert(a.s.repo);
  return out;
}

std::vector<uint64_t> JobQueue::ids_in(const std::string& repo) const {
  std::vector<uint64_t> out;
  for (const auto& [id, a] : active_) {
    if (a.s.repo == repo) out.push_back(id);
  }
  if (const Lane* l = find_lane(repo)) {
    for (const Waiting& w : l->waiting) {
      if (!w.removed) out.push_back(w.id);
    }
  }
  return out;
}

size_t JobQueue::running_in(const std::string& repo) const {
  const Lane* l = find_lane(repo);
  return l ? l->running : 0;
}

// ---- loading ----------------------------------------------------------------------------

void JobQueue::clear() {
  active_ = {};
  front_ = {};
  running_ = {};
  orphans_ = {};
  active_by_commit_ = {};
  lanes_ = {};
  next_lane_ = 0;
  waiting_live_ = 0;
  slot_ids_ = {};
  slot_hashes_ = {};
  slots_used_ = 0;
  branches_ = {};
  specs_ = {};
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
    insert_waiting(s, row.timeout_s);
    return false;
  }
  const uint64_t id = s.job_id;
  Active a;
  a.s = s;
  a.timeout_s = row.timeout_s;
  bool orphan = false;
  if (s.status == JobStatus::kQueued) {  // requeued: the store lists these first
    front_.push_back(id);
  } else {
    running_.insert(id);
    count_running(s.repo, +1);
    if (!attached) {
      a.orphaned = true;
      a.orphan_since = now;
      orphans_[a.s.runner].insert(id);
      orphan = true;
    }
  }
  active_by_commit_.emplace(commit_key(a.s.repo, a.s.commit), id);
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

std::vector<uint64_t> JobQueue::ids_of_commit(const std::string& commit, const std::string& repo) const {
  std::vector<uint64_t> out;
  auto [from, to] = active_by_commit_.equal_range(commit_key(repo, commit));
  for (auto it = from; it != to; ++it) out.push_back(it->second);
  find_commit(commit, repo, &out);
  return out;
}

uint64_t JobQueue::by_commit(const std::string& commit, const std::string& repo) const {
  auto it = active_by_commit_.find(commit_key(repo, commit));
  return it == active_by_commit_.end() ? find_commit(commit, repo) : it->second;
}

std::set<uint64_t> JobQueue::orphans_of(const std::string& runner) const {
  auto o = orphans_.find(runner);
  return o == orphans_.end() ? std::set<uint64_t>{} : o->second;
}

// ---- changes ----------------------------------------------------------------------------

void JobQueue::add(msg::JobSummary s, uint32_t timeout_s) {
  s.status = JobStatus::kQueued;
  s.attempt = 0;
  insert_waiting(s, timeout_s);
}

void JobQueue::walk_queue(size_t scan, const std::function<Pick(Active&)>& visit) {
  size_t skipped = 0;
  for (auto pos = front_.begin(); pos != front_.end() && skipped < scan;) {
    const uint64_t id = *pos;
    Active& a = active_.at(id);
    const Pick p = visit(a);
    if (p == Pick::kStop) return;
    if (p != Pick::kStart) {
      ++pos;
      ++skipped;
      continue;
    }
    pos = front_.erase(pos);
    a.s.status = JobStatus::kRunning;
    running_.insert(id);
    count_running(a.s.repo, +1);
  }
  // The lanes take turns, one started job a turn, until a whole round of turns starts nothing;
  // the next walk begins after the last lane that started one.
  bool stop = false;
  const size_t n = lanes_.size();
  for (size_t idle = 0, at = next_lane_; idle < n && !stop; at = (at + 1) % n) {
    Lane& l = lanes_[at % n];
    if (l.live > 0 && walk_lane(l, scan, visit, &stop)) {
      idle = 0;
      next_lane_ = (at + 1) % n;
    } else {
      ++idle;
    }
  }
}

bool JobQueue::walk_lane(Lane& l, size_t scan, const std::function<Pick(Active&)>& visit, bool* stop) {
  size_t skipped = 0;
  bool started = false;
  Active a;
  for (size_t i = 0; i < l.waiting.size() && skipped < scan; ++i) {
    Waiting& w = l.waiting[i];
    if (w.removed) continue;
    expand(w, &a);
    const Pick p = visit(a);
    if (p == Pick::kStop) *stop = true;
    if (p == Pick::kStop || p == Pick::kSkipLane) break;
    if (p == Pick::kSkip) {
      ++skipped;
      continue;
    }
    const uint64_t id = w.id;
    drop_waiting(w);
    a.s.status = JobStatus::kRunning;
    active_by_commit_.emplace(commit_key(a.s.repo, a.s.commit), id);
    running_.insert(id);
    ++l.running;
    active_[id] = std::move(a);
    started = true;
    break;
  }
  tidy_waiting(l);
  return started;
}

std::vector<msg::JobSummary> JobQueue::first_queued(size_t limit, const std::string* only_repo) const {
  std::vector<msg::JobSummary> out;
  for (auto it = front_.begin(); it != front_.end() && out.size() < limit; ++it) {
    const msg::JobSummary& s = active_.at(*it).s;
    if (!only_repo || s.repo == *only_repo) out.push_back(s);
  }
  // The lanes' jobs in turns from where the next walk starts, as if each turn started one.
  std::vector<size_t> at(lanes_.size(), 0);
  Active a;
  for (bool more = true; more && out.size() < limit;) {
    more = false;
    for (size_t k = 0; k < lanes_.size() && out.size() < limit; ++k) {
      const size_t n = (next_lane_ + k) % lanes_.size();
      if (only_repo && lanes_[n].repo != *only_repo) continue;
      const std::deque<Waiting>& w = lanes_[n].waiting;
      while (at[n] < w.size() && w[at[n]].removed) ++at[n];
      if (at[n] == w.size()) continue;
      expand(w[at[n]++], &a);
      out.push_back(a.s);
      more = true;
    }
  }
  return out;
}

void JobQueue::requeue(uint64_t id) {
  Active& a = active_.at(id);
  unorphan(id, a);
  if (running_.erase(id)) count_running(a.s.repo, -1);
  a.s.status = JobStatus::kQueued;
  a.s.runner.clear();
  a.s.started_at_ms = 0;
  front_.push_front(id);
}

void JobQueue::remove(uint64_t id) {
  auto it = active_.find(id);
  if (it == active_.end()) {
    if (Waiting* w = waiting(id)) {
      Lane& l = lanes_[w->lane];
      drop_waiting(*w);
      tidy_waiting(l);
    }
    return;
  }
  const msg::JobSummary& s = it->second.s;
  if (s.status == JobStatus::kQueued) {
    front_.erase(std::find(front_.begin(), front_.end(), id));
  }
  unorphan(id, it->second);
  if (running_.erase(id)) count_running(s.repo, -1);
  auto [from, to] = active_by_commit_.equal_range(commit_key(s.repo, s.commit));
  for (auto c = from; c != to; ++c) {
    if (c->second == id) {
      active_by_commit_.erase(c);
      break;
    }
  }
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

const JobQueue::Waiting* JobQueue::waiting_in(const Lane& l, uint64_t id) {
  auto it = std::lower_bound(l.waiting.begin(), l.waiting.end(), id,
                             [](const Waiting& w, uint64_t v) { return w.id < v; });
  return it != l.waiting.end() && it->id == id && !it->removed ? &*it : nullptr;
}

const JobQueue::Waiting* JobQueue::waiting(uint64_t id) const {
  for (const Lane& l : lanes_) {
    if (const Waiting* w = waiting_in(l, id)) return w;
  }
  return nullptr;
}

JobQueue::Waiting* JobQueue::waiting(uint64_t id) {
  return const_cast<Waiting*>(std::as_const(*this).waiting(id));
}

void JobQueue::insert_waiting(const msg::JobSummary& s, uint32_t timeout_s) {
  Lane& l = lane(s.repo);
  Waiting w;
  w.id = s.job_id;
  w.created_at_ms = s.created_at_ms;
  w.branch = branches_.add(s.branch, [] { return NoValue{}; });
  w.spec = specs_.add(spec_key(s, timeout_s), [&] { return Spec{s.job_name, s.labels, timeout_s}; });
  w.lane = static_cast<uint16_t>(&l - lanes_.data());
  if (!hex_to_bytes(s.commit, w.commit, &w.commit_size)) {
    w.commit_size = kOddCommit;
    odd_commits_[w.id] = s.commit;
  }
  grow_index();
  std::deque<Waiting>& q = l.waiting;
  if (q.empty() || q.back().id < w.id) {
    q.push_back(w);
  } else {  // ids come in growing order from the store; anything else keeps the order by id
    auto pos = std::lower_bound(q.begin(), q.end(), w.id, [](const Waiting& x, uint64_t v) { return x.id < v; });
    if (pos != q.end() && pos->id == w.id) *pos = w;  // only a removed record
    else q.insert(pos, w);
  }
  ++l.live;
  ++waiting_live_;
  index_commit(w);
}

void JobQueue::expand(const Waiting& w, Active* a) const {
  msg::JobSummary& s = a->s;
  s.job_id = w.id;
  const Spec& spec = specs_.value(w.spec);
  s.commit = commit_of(w);
  s.branch = branches_.key(w.branch);
  s.repo = lanes_[w.lane].repo;
  s.job_name = spec.job_name;
  s.labels = spec.labels;
  s.waiting.clear();
  a->timeout_s = spec.timeout_s;
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
  branches_.release(w.branch);
  specs_.release(w.spec);
  if (w.commit_size == kOddCommit) odd_commits_.erase(w.id);
  w.removed = true;
  --lanes_[w.lane].live;
  --waiting_live_;
  shrink_index();
}

// Removed records leave at once from the front (as dispatch takes jobs), and by a compaction
// once they are most of the deque (cancelled jobs in the middle), so memory follows the queue.
void JobQueue::tidy_waiting(Lane& l) {
  std::deque<Waiting>& q = l.waiting;
  while (!q.empty() && q.front().removed) q.pop_front();
  if (l.live == 0) {
    std::deque<Waiting>().swap(q);
    return;
  }
  const size_t removed = q.size() - l.live;
  if (removed > kMinSlots && removed > l.live) {
    std::erase_if(q, [](const Waiting& w) { return w.removed; });
    q.shrink_to_fit();
  }
}

// ---- the commit index of waiting jobs -----------------------------------------------------

uint32_t JobQueue::hash_of(const Waiting& w) const {
  if (w.commit_size == kOddCommit) return commit_hash(odd_commits_.at(w.id), true, w.lane);
  return commit_hash({reinterpret_cast<const char*>(w.commit), w.commit_size}, false, w.lane);
}

uint64_t JobQueue::find_commit(const std::string& commit, const std::string& repo,
                               std::vector<uint64_t>* all) const {
  const Lane* l = find_lane(repo);
  if (slots_used_ == 0 || !l) return 0;
  const size_t lane = static_cast<size_t>(l - lanes_.data());
  uint8_t bytes[32];
  uint8_t size = 0;
  const bool odd = !hex_to_bytes(commit, bytes, &size);
  const uint32_t h =
      odd ? commit_hash(commit, true, lane)
          : commit_hash({reinterpret_cast<const char*>(bytes), size}, false, lane);
  const size_t mask = slot_ids_.size() - 1;
  for (size_t i = h & mask; slot_ids_[i] != 0; i = (i + 1) & mask) {
    if (slot_hashes_[i] != h) continue;
    const Waiting* w = waiting_in(*l, slot_ids_[i]);
    if (!w) continue;
    const bool same = odd ? w->commit_size == kOddCommit && odd_commits_.at(w->id) == commit
                          : w->commit_size == size && std::memcmp(w->commit, bytes, size) == 0;
    if (!same) continue;
    if (!all) return w->id;
    all->push_back(w->id);
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
