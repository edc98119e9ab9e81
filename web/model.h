// What simpleci-web knows of the dispatcher, built from the feed (net::Feed): runners, the head
// of the queue, running jobs, recently finished jobs, and the last events already written as
// Server-Sent Events so a reconnecting page resumes with Last-Event-ID. No sockets, no threads:
// the server calls it on its one I/O thread, the tests call it directly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "messages/messages.h"

namespace simpleci::web {

inline constexpr size_t kEventRing = 4096;   // SSE events kept for Last-Event-ID replay
inline constexpr size_t kRecentJobs = 1000;  // finished jobs /api/status lists
inline constexpr size_t kQueuedShown = 1000;  // the head of the queue /api/status lists

// An SSE event id, written "<feed>-<seq>": the seq alone starts over when the dispatcher
// restarts, and an id from the old feed must not pass for one of the new.
struct EventId {
  uint64_t feed = 0, seq = 0;
};
std::string event_id_text(EventId id);
// "<feed>-<seq>", both decimal digits only and below 2^64; nullopt for anything else (a bare
// seq included).
std::optional<EventId> parse_event_id(std::string_view s);

// One SSE frame: "id: <feed>-<seq>\nevent: <kind>\ndata: <json>\n\n".
std::string sse_frame(EventId id, std::string_view kind, const nlohmann::json& data);
// The frame that tells a page to refetch /api/status: "event: resync" (with the model's event id,
// so a reconnect from it replays what came after).
std::string sse_resync(EventId id, std::string_view why);
// The JSON of a runner as /api/status and events show it.
nlohmann::json runner_json(const msg::RunnerInfo& r);
// The data of an event frame: {feed, seq, kind, at, queue_length, job, runner} (job and runner
// null when the event has none).
nlohmann::json event_json(const msg::Event& e);

class Model {
 public:
  explicit Model(size_t ring = kEventRing, size_t recent = kRecentJobs);

  // The feed (re)started: state as of s. Returns the resync frame to send every SSE client.
  std::string on_snapshot(const msg::Snapshot& s);
  // The next event: updates the state and returns its SSE frame (also kept in the ring).
  std::string on_event(const msg::Event& e);
  // The feed broke: until the next snapshot the state is stale. Returns a resync frame.
  std::string on_interrupted(std::string_view why);

  // /api/status.
  nlohmann::json status() const;
  // The frames after event seq of feed, when that is the model's feed and the ring still holds
  // every one of them (empty: nothing missed); nullopt when not (the client must resync).
  std::optional<std::string> replay_after(uint64_t feed, uint64_t seq) const;

  // A running job as the model knows it; nullptr when it is not running.
  const msg::JobSummary* running(uint64_t job_id) const;
  bool in_step() const { return in_step_; }
  uint64_t seq() const { return seq_; }
  uint64_t feed() const { return feed_; }
  EventId event_id() const { return {feed_, seq_}; }
  size_t recent_size() const { return recent_.size(); }
  size_t queued_size() const { return queued_.size(); }

 private:
  void apply_job(const msg::Event& e, const msg::JobSummary& j);
  void erase_queued(uint64_t job_id);

  size_t ring_cap_, recent_cap_;
  bool in_step_ = false;
  uint64_t feed_ = 0, seq_ = 0, queue_length_ = 0;
  uint64_t ring_base_ = 0;  // the ring holds every event with seq in (ring_base_, seq_]
  std::deque<std::pair<uint64_t, std::string>> ring_;
  std::map<std::string, msg::RunnerInfo> runners_;
  std::deque<msg::JobSummary> queued_;
  std::map<uint64_t, msg::JobSummary> running_;
  std::deque<msg::JobSummary> recent_;  // newest first
};

}  // namespace simpleci::web
