#include "common/clock.h"

#include <cstdio>
#include <ctime>

namespace simpleci {

std::string iso8601_utc(int64_t wall_ms) {
  const time_t secs = static_cast<time_t>(wall_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  const size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[64];
  std::snprintf(out, sizeof out, "%.*s.%03dZ", static_cast<int>(n), buf,
                static_cast<int>(wall_ms % 1000));
  return out;
}

}  // namespace simpleci
