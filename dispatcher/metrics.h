// The dispatcher's histograms (job duration, queue wait) for METRICS_REPLY: fixed bounds in
// milliseconds, cumulative counts as Prometheus reads them (PROTOCOL.md "Metrics").
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "messages/messages.h"

namespace simpleci::dispatcher {

class Histogram {
 public:
  static constexpr std::array<int64_t, 14> kBoundsMs{10,   50,    100,   250,    500,    1000,
                                                     2500, 5000,  10000, 30000,  60000,  300000,
                                                     900000, 3600000};
  // A negative value (a clock step) counts as 0.
  void observe(int64_t ms);
  // "hist.<name>.le.<bound>" for every bound (cumulative), then ".count" and ".sum_ms".
  void append_to(const std::string& name, std::vector<msg::Counter>* out) const;
  uint64_t count() const { return count_; }

 private:
  std::array<uint64_t, kBoundsMs.size()> in_bucket_{};  // not cumulative: bucket i only
  uint64_t count_ = 0;
  uint64_t sum_ms_ = 0;
};

}  // namespace simpleci::dispatcher
