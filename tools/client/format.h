// How the `simpleci` client shows replies: plain tables for people, JSON for scripts.
#pragma once

#include <string>
#include <string_view>

#include "messages/messages.h"

namespace simpleci::client {

std::string status_text(const msg::StatusReply& s, int64_t now_ms);
std::string status_json(const msg::StatusReply& s);
std::string results_text(const msg::ResultsReply& r, bool full);
std::string results_json(const msg::ResultsReply& r);

// `simpleci events`: one line each (newline included), text or one JSON object; docs/CLI.md
// describes both. at_ms: the wall-clock time of lines that carry none of their own.
std::string event_line(const msg::Event& e, bool json);
std::string snapshot_line(const msg::Snapshot& s, int64_t at_ms, bool json);
std::string output_line(const msg::JobOutput& o, int64_t at_ms, bool json);
std::string interrupted_line(std::string_view why, int64_t at_ms, bool json);

}  // namespace simpleci::client
