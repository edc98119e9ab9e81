// How the `simpleci` client shows replies: plain tables for people, JSON for scripts.
#pragma once

#include <string>

#include "messages/messages.h"

namespace simpleci::client {

std::string status_text(const msg::StatusReply& s, int64_t now_ms);
std::string status_json(const msg::StatusReply& s);
std::string results_text(const msg::ResultsReply& r, bool full);
std::string results_json(const msg::ResultsReply& r);

}  // namespace simpleci::client
