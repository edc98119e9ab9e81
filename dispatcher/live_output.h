// LiveOutput: the newest streamed output of each running job, for WATCH. It answers "what did a
// running attempt print lately".
//
// It owns, per running job, the attempt the bytes belong to and a window of its newest bytes
// (between `window` and 2 * `window` once full, so trimming is rare) with the offset of the first
// one in the attempt's output. A finished job's output is the store's; the Dispatcher erases the
// job here when it ends or goes back to the queue.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

namespace simpleci::dispatcher {

class LiveOutput {
 public:
  explicit LiveOutput(size_t window) : window_(window) {}

  // A chunk of attempt `attempt`'s output at byte `offset`. A chunk of a newer attempt starts the
  // job's window again; a repeated chunk (the runner resends after a reconnect) adds nothing; a
  // gap restarts the window after it.
  void add(uint64_t job_id, uint32_t attempt, uint64_t offset, std::string_view data);
  // At most `max` kept bytes of attempt `attempt` from *offset, which is first moved into the
  // window kept. False (nothing changed) when no bytes of that attempt are kept.
  bool read(uint64_t job_id, uint32_t attempt, uint64_t* offset, size_t max,
            std::string* data) const;
  void erase(uint64_t job_id) { live_.erase(job_id); }
  void clear() { live_.clear(); }

 private:
  struct Window {
    uint32_t attempt = 0;
    uint64_t base = 0;  // offset of data[0] in the attempt's output
    std::string data;
  };
  size_t window_;
  std::unordered_map<uint64_t, Window> live_;  // by job id
};

}  // namespace simpleci::dispatcher
