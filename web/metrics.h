// The dispatcher's METRICS_REPLY as Prometheus text (exposition format 0.0.4): names by the
// Prometheus conventions (base units, _total for counters, labels for status, state, reason).
// A pure function, so the mapping is unit-tested without a dispatcher.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "messages/messages.h"

namespace simpleci::web {

inline constexpr std::string_view kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

// metrics: [name, value] pairs as messages/PROTOCOL.md "Metrics" lists them. version: this
// build's version, for simpleci_build_info. Names it does not know become counters
// simpleci_<name, '.' and other characters → '_'>_total, so a counter the dispatcher adds later
// shows up without a change here.
std::string prometheus_text(const std::vector<msg::Counter>& metrics, std::string_view version);

// "2.5" for 2500 ms: a bucket bound in seconds, without trailing zeros.
std::string seconds_text(uint64_t ms);

}  // namespace simpleci::web
