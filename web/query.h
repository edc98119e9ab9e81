// The parts of an HTTP request simpleci-web checks before anything reaches the dispatcher: the
// --listen address, the request target (path and query), the values of /api/jobs, job ids and
// badge branches. Every function says what was wrong in one line a person reads.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "messages/messages.h"

namespace simpleci::web {

struct ListenAddress {
  std::string host;  // an IP literal (without brackets)
  uint16_t port = 0;  // 0: the OS picks
};

// "HOST:PORT" with HOST an IPv4 address, "[IPv6]" or "localhost" (127.0.0.1), PORT 0..65535.
std::optional<ListenAddress> parse_listen(std::string_view s, std::string* err);

struct Target {
  std::string path;                           // percent-decoded
  std::map<std::string, std::string> query;   // percent-decoded; a repeated key keeps the last
};

// Splits "/a/b?x=1&y=2" and decodes %XX and '+' in the query. nullopt (with *err) for a bad
// escape or a path that does not start with '/'.
std::optional<Target> parse_target(std::string_view target, std::string* err);

// /api/jobs?branch=&status=&limit=&before=: a JOBS_REQUEST, or nullopt with *err. status is a
// comma list of status words; limit 1..1000 (default 20); before a job id (paging).
std::optional<msg::JobsRequest> jobs_request(const std::map<std::string, std::string>& q,
                                             std::string* err);

// A job id in a path: decimal digits, 1..2^53 (so it is exact in JavaScript), no sign or space.
std::optional<uint64_t> parse_job_id(std::string_view s);
// A decimal offset or count, 0..2^50.
std::optional<uint64_t> parse_offset(std::string_view s);

// The bits of JobsRequest::statuses for the final statuses (passed ... error).
uint32_t final_status_bits();

// An SVG badge "<branch> | <status word>" in the status's colour ("none" in grey for no job).
std::string badge_svg(std::string_view branch, std::string_view status);

}  // namespace simpleci::web
