// Names of the wire enumerations, and what the table of message types says about a Message.
#include "messages/messages.h"

namespace simpleci::msg {

std::string_view to_string(MessageType t) {
  const TypeInfo* info = type_info(static_cast<uint8_t>(t));
  return info ? info->name : "?";
}

std::string_view to_string(JobStatus s) {
  static constexpr std::string_view kNames[] = {"queued",  "running",   "passed", "failed",
                                                "timeout", "cancelled", "error"};
  const auto i = static_cast<size_t>(s);
  return i < std::size(kNames) ? kNames[i] : "?";
}

std::optional<JobStatus> job_status_from_string(std::string_view s) {
  for (uint8_t i = 0; i <= kMaxJobStatus; ++i) {
    if (to_string(static_cast<JobStatus>(i)) == s) return static_cast<JobStatus>(i);
  }
  return std::nullopt;
}

bool is_final(JobStatus s) { return static_cast<uint8_t>(s) >= 2; }

std::string_view to_string(ErrorCode c) {
  static constexpr std::string_view kNames[] = {"?",           "bad_request", "version_mismatch",
                                                "storage_failure", "not_found", "invalid_state",
                                                "unauthorized", "queue_full", "busy"};
  const auto i = static_cast<size_t>(c);
  return i < std::size(kNames) ? kNames[i] : "?";
}

std::string_view to_string(EventKind k) {
  static constexpr std::string_view kNames[] = {
      "?",           "job_queued", "job_started",    "job_finished", "job_requeued",
      "runner_joined", "runner_left", "runner_changed", "keepalive",  "dropped"};
  const auto i = static_cast<size_t>(k);
  return i < std::size(kNames) ? kNames[i] : "?";
}

// The variant's alternatives are the table's rows in wire order (checked in messages.h).
MessageType type_of(const Message& m) { return static_cast<MessageType>(m.index() + 1); }

const TypeInfo& info_of(const Message& m) { return kTypeInfos[m.index() + 1]; }

}  // namespace simpleci::msg
