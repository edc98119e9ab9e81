#include "messages/summary_json.h"

#include "common/clock.h"

namespace simpleci::msg {

namespace {

std::string when(int64_t wall_ms) { return wall_ms ? iso8601_utc(wall_ms) : ""; }

}  // namespace

nlohmann::json summary_json(const JobSummary& s) {
  return {{"job_id", s.job_id},
          {"commit", s.commit},
          {"branch", s.branch},
          {"status", std::string(to_string(s.status))},
          {"exit_code", s.exit_code},
          {"duration_ms", s.duration_ms},
          {"runner", s.runner},
          {"attempt", s.attempt},
          {"created_at", when(s.created_at_ms)},
          {"started_at", when(s.started_at_ms)},
          {"finished_at", when(s.finished_at_ms)},
          {"truncated", s.truncated}};
}

std::string json_text(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace simpleci::msg
