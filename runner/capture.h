// Bounded capture of a job's output: keeps the head and the tail of the stream, so a test that
// prints gigabytes costs at most `cap` bytes of memory.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "messages/limits.h"

namespace simpleci::runner {

// The output not streamed yet (PROTOCOL.md rule 7): at most `limit` bytes; when more comes, the
// oldest unsent bytes are skipped, and offset() jumps past them.
class LiveBacklog {
 public:
  explicit LiveBacklog(size_t limit) : limit_(limit) {}
  void append(std::string_view data);
  // The stream position of the first byte not sent.
  uint64_t offset() const { return offset_; }
  size_t size() const { return buf_.size() - start_; }
  // The first n bytes not sent (fewer when fewer wait), and their removal once sent.
  std::string_view front(size_t n) const { return std::string_view(buf_).substr(start_, n); }
  void pop(size_t n);

 private:
  size_t limit_;
  std::string buf_;
  size_t start_ = 0;     // bytes of buf_ already taken (dropped when they are half of it)
  uint64_t offset_ = 0;  // stream position of buf_[start_]
};

class OutputCapture {
 public:
  // cap: the most bytes the final output may hold, marker included (>= 1024). live_limit: the
  // most unsent live output held (the whole stream is streamed, whatever the cap).
  explicit OutputCapture(uint64_t cap, size_t live_limit = msg::kRunnerLiveBacklog);

  void append(std::string_view data);
  uint64_t total() const { return total_; }
  bool truncated() const { return total_ > head_cap_ + tail_cap_; }
  // What is still to be streamed live.
  LiveBacklog& live() { return live_; }
  // The kept output: everything, or head + "[simpleci: output truncated, N bytes omitted]" line
  // + tail when the stream was longer than the cap.
  std::string result() const;

 private:
  uint64_t head_cap_, tail_cap_;
  std::string head_;
  std::string ring_;   // tail bytes, circular once full
  size_t ring_pos_ = 0;  // next write position when full
  uint64_t total_ = 0;
  LiveBacklog live_;
};

}  // namespace simpleci::runner
