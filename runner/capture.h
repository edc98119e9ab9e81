// Bounded capture of a job's output: keeps the head and the tail of the stream, so a test that
// prints gigabytes costs at most `cap` bytes of memory.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace simpleci::runner {

class OutputCapture {
 public:
  // cap: the most bytes the final output may hold, marker included (>= 1024).
  explicit OutputCapture(uint64_t cap);

  void append(std::string_view data);
  uint64_t total() const { return total_; }
  bool truncated() const { return total_ > head_cap_ + tail_cap_; }
  // Bytes at the start of the stream that will be kept as they are (for live streaming).
  const std::string& head() const { return head_; }
  // The kept output: everything, or head + "[simpleci: output truncated, N bytes omitted]" line
  // + tail when the stream was longer than the cap.
  std::string result() const;

 private:
  uint64_t head_cap_, tail_cap_;
  std::string head_;
  std::string ring_;   // tail bytes, circular once full
  size_t ring_pos_ = 0;  // next write position when full
  uint64_t total_ = 0;
};

}  // namespace simpleci::runner
