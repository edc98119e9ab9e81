#include "dispatcher/live_output.h"

#include <algorithm>

namespace simpleci::dispatcher {

void LiveOutput::add(uint64_t job_id, uint32_t attempt, uint64_t offset, std::string_view data) {
  Window& l = live_[job_id];
  if (l.attempt != attempt) l = Window{attempt, 0, {}};
  uint64_t end = l.base + l.data.size();
  if (offset > end) {
    l.data.clear();
    l.base = end = offset;
  }
  if (offset + data.size() <= end) return;
  l.data.append(data.substr(static_cast<size_t>(end - offset)));
  if (l.data.size() > 2 * window_) {
    const size_t drop = l.data.size() - window_;
    l.data.erase(0, drop);
    l.base += drop;
  }
}

bool LiveOutput::read(uint64_t job_id, uint32_t attempt, uint64_t* offset, size_t max,
                      std::string* data) const {
  auto it = live_.find(job_id);
  if (it == live_.end() || it->second.attempt != attempt) return false;
  const Window& l = it->second;
  *offset = std::clamp<uint64_t>(*offset, l.base, l.base + l.data.size());
  *data = l.data.substr(static_cast<size_t>(*offset - l.base), max);
  return true;
}

}  // namespace simpleci::dispatcher
