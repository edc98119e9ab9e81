// Result files under --results-dir: <commit> holds the output, <commit>.json the summary.
#pragma once

#include <filesystem>
#include <string>

#include "messages/messages.h"

namespace simpleci::dispatcher {

// The summary document written beside the output (keys listed in PROTOCOL.md).
std::string result_json(const msg::JobSummary& s);

// Writes both files atomically (temporary file + rename; not fsync'ed: the store is the
// durable record and the files are rewritten from it). s.commit must be a validated commit id;
// anything else is refused, so nothing from the wire chooses a path.
bool write_result_files(const std::filesystem::path& dir, const msg::JobSummary& s,
                        const std::string& output, std::string* err);

}  // namespace simpleci::dispatcher
