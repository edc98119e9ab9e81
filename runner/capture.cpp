#include "runner/capture.h"

#include <algorithm>

namespace simpleci::runner {

namespace {
constexpr uint64_t kMarkerReserve = 128;  // room for the truncation line
}

void LiveBacklog::append(std::string_view data) {
  if (data.size() >= limit_) {  // only its newest limit_ bytes can stay
    offset_ += size() + (data.size() - limit_);
    buf_.assign(data.substr(data.size() - limit_));
    start_ = 0;
    return;
  }
  const size_t over = size() + data.size() > limit_ ? size() + data.size() - limit_ : 0;
  start_ += over;
  offset_ += over;
  if (start_ > buf_.size() / 2) {
    buf_.erase(0, start_);
    start_ = 0;
  }
  buf_.append(data);
}

void LiveBacklog::pop(size_t n) {
  n = std::min(n, size());
  start_ += n;
  offset_ += n;
  if (start_ == buf_.size()) {
    buf_.clear();
    start_ = 0;
  }
}

OutputCapture::OutputCapture(uint64_t cap, size_t live_limit) : live_(live_limit) {
  cap = std::max<uint64_t>(cap, 1024);
  head_cap_ = cap / 2;
  tail_cap_ = cap - head_cap_ - kMarkerReserve;
}

void OutputCapture::append(std::string_view data) {
  total_ += data.size();
  live_.append(data);
  if (head_.size() < head_cap_) {
    size_t n = std::min<size_t>(data.size(), head_cap_ - head_.size());
    head_.append(data.substr(0, n));
    data.remove_prefix(n);
  }
  if (data.size() >= tail_cap_) {  // only the last tail_cap_ bytes can survive
    ring_.assign(data.substr(data.size() - tail_cap_));
    ring_pos_ = 0;
    return;
  }
  while (!data.empty()) {
    if (ring_.size() < tail_cap_) {
      size_t n = std::min<size_t>(data.size(), tail_cap_ - ring_.size());
      ring_.append(data.substr(0, n));
      data.remove_prefix(n);
      continue;
    }
    size_t n = std::min<size_t>(data.size(), tail_cap_ - ring_pos_);
    ring_.replace(ring_pos_, n, data.substr(0, n));
    ring_pos_ = (ring_pos_ + n) % tail_cap_;
    data.remove_prefix(n);
  }
}

std::string OutputCapture::result() const {
  // Built in one allocation: the kept output can be 16 MiB.
  std::string marker;
  if (truncated()) {
    const uint64_t omitted = total_ - head_.size() - ring_.size();
    marker = "\n[simpleci: output truncated, " + std::to_string(omitted) + " bytes omitted]\n";
  }
  std::string out;
  out.reserve(head_.size() + marker.size() + ring_.size());
  out += head_;
  out += marker;
  if (ring_.size() < tail_cap_) {
    out += ring_;
  } else {  // the ring is full: its oldest byte is at ring_pos_
    out.append(ring_, ring_pos_, std::string::npos);
    out.append(ring_, 0, ring_pos_);
  }
  return out;
}

}  // namespace simpleci::runner
