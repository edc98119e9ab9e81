// A job's summary as JSON: the one mapping behind `<commit>.json` and the client's --json
// output, so the two can never disagree about a key. Keys are listed in PROTOCOL.md ("Results
// on disk"); times are ISO 8601 UTC, "" when the job never got there.
#pragma once

#include <nlohmann/json.hpp>

#include "messages/messages.h"

namespace simpleci::msg {

nlohmann::json summary_json(const JobSummary& s);

// j as text; strings that came from the wire are escaped and invalid UTF-8 is replaced, never
// thrown on. indent -1: one line.
std::string json_text(const nlohmann::json& j, int indent = -1);

}  // namespace simpleci::msg
