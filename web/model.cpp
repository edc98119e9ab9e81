#include "web/model.h"

#include <algorithm>
#include <charconv>

#include "common/clock.h"
#include "messages/summary_json.h"

namespace simpleci::web {

namespace {

nlohmann::json jobs_json(const auto& jobs) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& j : jobs) a.push_back(msg::summary_json(j));
  return a;
}

// Decimal digits only (no sign, space or hex), at most 20 of them, below 2^64.
std::optional<uint64_t> parse_decimal(std::string_view s) {
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (s.empty() || s.size() > 20 || !std::all_of(s.begin(), s.end(), digit)) return std::nullopt;
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;  // out of range
  return v;
}

}  // namespace

std::string event_id_text(EventId id) {
  return std::to_string(id.feed) + "-" + std::to_string(id.seq);
}

std::optional<EventId> parse_event_id(std::string_view s) {
  auto dash = s.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  auto feed = parse_decimal(s.substr(0, dash));
  auto seq = parse_decimal(s.substr(dash + 1));
  if (!feed || !seq) return std::nullopt;
  return EventId{*feed, *seq};
}

std::string sse_frame(EventId id, std::string_view kind, const nlohmann::json& data) {
  // json_text never emits a raw newline (they are escaped in strings), so data is one line.
  std::string out = "id: " + event_id_text(id) + "\nevent: ";
  out.append(kind);
  out += "\ndata: ";
  out += msg::json_text(data);
  out += "\n\n";
  return out;
}

std::string sse_resync(EventId id, std::string_view why) {
  return sse_frame(id, "resync", {{"seq", id.seq}, {"why", std::string(why)}});
}

nlohmann::json runner_json(const msg::RunnerInfo& r) {
  return {{"name", r.name},
          {"state", r.state},
          {"capacity", r.capacity},
          {"jobs", r.jobs},
          {"last_seen", r.last_seen_ms ? iso8601_utc(r.last_seen_ms) : ""}};
}

nlohmann::json event_json(const msg::Event& e) {
  auto kind = msg::to_string(static_cast<msg::EventKind>(e.kind));
  return {{"feed", e.feed},
          {"seq", e.seq},
          {"kind", std::string(kind)},
          {"at", e.at_ms ? iso8601_utc(e.at_ms) : ""},
          {"queue_length", e.queue_length},
          {"job", e.jobs.empty() ? nlohmann::json() : msg::summary_json(e.jobs[0])},
          {"runner", e.runners.empty() ? nlohmann::json() : runner_json(e.runners[0])}};
}

Model::Model(size_t ring, size_t recent) : ring_cap_(ring), recent_cap_(recent) {}

std::string Model::on_snapshot(const msg::Snapshot& s) {
  in_step_ = true;
  // Events between the ring's newest and the snapshot were missed: the ring cannot replay
  // across them, so it starts over at the snapshot.
  if (s.feed != feed_ || s.seq != seq_) {
    ring_.clear();
    ring_base_ = s.seq;
  }
  feed_ = s.feed;
  seq_ = s.seq;
  queue_length_ = s.queue_length;
  runners_.clear();
  for (const auto& r : s.runners) runners_[r.name] = r;
  queued_.assign(s.queued.begin(), s.queued.end());
  running_.clear();
  for (const auto& j : s.running) running_[j.job_id] = j;
  return sse_resync(event_id(), "snapshot");
}

std::string Model::on_interrupted(std::string_view why) {
  in_step_ = false;
  return sse_resync(event_id(), why);
}

void Model::erase_queued(uint64_t job_id) {
  auto it = std::find_if(queued_.begin(), queued_.end(),
                         [&](const msg::JobSummary& q) { return q.job_id == job_id; });
  if (it != queued_.end()) queued_.erase(it);
}

void Model::apply_job(const msg::Event& e, const msg::JobSummary& j) {
  switch (static_cast<msg::EventKind>(e.kind)) {
    case msg::EventKind::kJobQueued:
      // Only the head of the queue is kept; the rest shows as queue_length.
      if (queued_.size() < kQueuedShown && e.queue_length <= kQueuedShown) queued_.push_back(j);
      break;
    case msg::EventKind::kJobStarted:
      erase_queued(j.job_id);
      running_[j.job_id] = j;
      break;
    case msg::EventKind::kJobRequeued:
      running_.erase(j.job_id);
      erase_queued(j.job_id);
      queued_.push_front(j);  // a requeued job goes ahead of the new ones
      if (queued_.size() > kQueuedShown) queued_.pop_back();
      break;
    case msg::EventKind::kJobFinished:
      running_.erase(j.job_id);
      erase_queued(j.job_id);
      recent_.push_front(j);
      if (recent_.size() > recent_cap_) recent_.pop_back();
      break;
    default:
      break;
  }
}

std::string Model::on_event(const msg::Event& e) {
  auto kind = static_cast<msg::EventKind>(e.kind);
  seq_ = e.seq;
  queue_length_ = e.queue_length;
  if (!e.jobs.empty()) apply_job(e, e.jobs[0]);
  if (!e.runners.empty()) {
    const auto& r = e.runners[0];
    if (kind == msg::EventKind::kRunnerLeft) {
      runners_.erase(r.name);
    } else {
      runners_[r.name] = r;
    }
  }
  std::string frame = sse_frame({e.feed, e.seq}, msg::to_string(kind), event_json(e));
  ring_.emplace_back(e.seq, frame);
  if (ring_.size() > ring_cap_) {
    ring_base_ = ring_.front().first;
    ring_.pop_front();
  }
  return frame;
}

nlohmann::json Model::status() const {
  nlohmann::json runners = nlohmann::json::array();
  for (const auto& [name, r] : runners_) runners.push_back(runner_json(r));
  nlohmann::json running = nlohmann::json::array();
  for (const auto& [id, j] : running_) running.push_back(msg::summary_json(j));
  return {{"feed", in_step_ ? "live" : "interrupted"},
          {"feed_id", feed_},
          {"seq", seq_},
          {"event_id", event_id_text(event_id())},
          {"queue_length", queue_length_},
          {"runners", std::move(runners)},
          {"queued", jobs_json(queued_)},
          {"running", std::move(running)},
          {"recent", jobs_json(recent_)}};
}

std::optional<std::string> Model::replay_after(uint64_t feed, uint64_t seq) const {
  // Another feed's seq says nothing about this one's: the dispatcher restarted since.
  if (!in_step_ || feed != feed_ || seq > seq_ || seq < ring_base_) return std::nullopt;
  std::string out;
  for (const auto& [s, frame] : ring_) {
    if (s > seq) out += frame;
  }
  return out;
}

const msg::JobSummary* Model::running(uint64_t job_id) const {
  auto it = running_.find(job_id);
  return it == running_.end() ? nullptr : &it->second;
}

}  // namespace simpleci::web
