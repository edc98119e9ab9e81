// Time as a seam: components take a Clock& so tests can drive heartbeats, timeouts and requeue
// with a FakeClock instead of sleeping.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace simpleci {

using SteadyTime = std::chrono::steady_clock::time_point;
using Millis = std::chrono::milliseconds;

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic time, for intervals and deadlines.
  virtual SteadyTime now() const = 0;
  // Wall-clock milliseconds since the Unix epoch (UTC), for timestamps people read.
  virtual int64_t wall_ms() const = 0;
};

class SystemClock final : public Clock {
 public:
  SteadyTime now() const override { return std::chrono::steady_clock::now(); }
  int64_t wall_ms() const override {
    return std::chrono::duration_cast<Millis>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

// Starts at an arbitrary fixed point; moves only when told to. Not thread-safe.
class FakeClock final : public Clock {
 public:
  SteadyTime now() const override { return now_; }
  int64_t wall_ms() const override { return wall_ms_; }
  void advance(Millis d) {
    now_ += d;
    wall_ms_ += d.count();
  }

 private:
  SteadyTime now_ = SteadyTime(std::chrono::hours(1000));
  int64_t wall_ms_ = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
};

// "2026-01-01T00:00:00.000Z"
std::string iso8601_utc(int64_t wall_ms);

}  // namespace simpleci
