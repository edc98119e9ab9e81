#include "dispatcher/results.h"

#include <nlohmann/json.hpp>

#include "messages/clock.h"
#include "messages/fsutil.h"
#include "messages/validate.h"

namespace simpleci::dispatcher {

std::string result_json(const msg::JobSummary& s) {
  nlohmann::json j = {
      {"commit", s.commit},
      {"branch", s.branch},
      {"status", std::string(msg::to_string(s.status))},
      {"exit_code", s.exit_code},
      {"duration_ms", s.duration_ms},
      {"runner", s.runner},
      {"attempt", s.attempt},
      {"job_id", s.job_id},
      {"started_at", s.started_at_ms ? iso8601_utc(s.started_at_ms) : ""},
      {"finished_at", s.finished_at_ms ? iso8601_utc(s.finished_at_ms) : ""},
      {"truncated", s.truncated},
  };
  // The runner name and branch came from the wire; dump() escapes them, and replaces any
  // invalid UTF-8 instead of throwing.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

bool write_result_files(const std::filesystem::path& dir, const msg::JobSummary& s,
                        const std::string& output, std::string* err) {
  if (!is_commit_id(s.commit)) {
    *err = "refusing to write results for a bad commit id";
    return false;
  }
  return write_file_atomic(dir / s.commit, output, false, err) &&
         write_file_atomic(dir / (s.commit + ".json"), result_json(s), false, err);
}

}  // namespace simpleci::dispatcher
