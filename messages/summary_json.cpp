#include "messages/summary_json.h"

#include "common/clock.h"

namespace simpleci::msg {

namespace {

std::string when(int64_t wall_ms) { return wall_ms ? iso8601_utc(wall_ms) : ""; }

}  // namespace

// The keys of issue 11 (repo, job, labels, waiting) appear only when set, so the original
// flow's <commit>.json stays exactly what it was.
nlohmann::json summary_json(const JobSummary& s) {
  nlohmann::json j = {{"job_id", s.job_id},
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
  if (!s.repo.empty()) j["repo"] = s.repo;
  if (!s.job_name.empty()) j["job"] = s.job_name;
  if (!s.labels.empty()) j["labels"] = s.labels;
  if (!s.waiting.empty()) j["waiting"] = s.waiting;
  return j;
}

std::string json_text(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace simpleci::msg
