#include "runner/held_results.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "common/fsutil.h"
#include "messages/codec.h"

namespace simpleci::runner {

namespace fs = std::filesystem;

namespace {

constexpr const char* kSparePrefix = "spare-";

// Writes data over the file at path (which exists), from its start, cutting what was longer.
bool overwrite(const fs::path& path, const std::string& data) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) return false;
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  return ::close(fd) == 0 && done == data.size();
}

}  // namespace

fs::path HeldResults::path_of(uint64_t job, uint32_t attempt) const {
  return dir_ / (std::to_string(job) + "-" + std::to_string(attempt) + ".result");
}

bool HeldResults::load(std::vector<msg::Result>* out, std::string* err) {
  if (!ensure_writable_dir(dir_, err)) return false;
  for (const auto& e : fs::directory_iterator(dir_)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(kSparePrefix, 0) == 0) {
      std::error_code ec;
      if (spares_.size() < kMaxSpares) spares_.push_back(e.path());
      else fs::remove(e.path(), ec);
      continue;
    }
    if (e.path().extension() != ".result") continue;
    std::string body, rerr;
    msg::Decoded d;
    if (read_file(e.path(), msg::kMaxFrameBytes, &body, &rerr)) d = msg::decode_body(body);
    if (!d.ok() || !std::holds_alternative<msg::Result>(d.message)) {
      spdlog::warn("ignoring unreadable saved result {}", e.path().string());
      continue;
    }
    out->push_back(std::get<msg::Result>(d.message));
  }
  // Spare names must not collide with the ones found.
  next_spare_ = static_cast<uint64_t>(::getpid()) << 20;
  return true;
}

bool HeldResults::save(const msg::Result& r, std::string* err) {
  const std::string data = msg::encode(r);
  const fs::path target = path_of(r.job_id, r.attempt);
  while (!spares_.empty()) {
    const fs::path spare = spares_.back();
    spares_.pop_back();
    if (overwrite(spare, data) && ::rename(spare.c_str(), target.c_str()) == 0) return true;
    std::error_code ec;
    fs::remove(spare, ec);  // not usable: fall back to a new file
  }
  return write_file_atomic(target, data, false, err);
}

void HeldResults::release(uint64_t job, uint32_t attempt) {
  const fs::path held = path_of(job, attempt);
  std::error_code ec;
  if (spares_.size() < kMaxSpares) {
    const fs::path spare = dir_ / (kSparePrefix + std::to_string(next_spare_++));
    if (::rename(held.c_str(), spare.c_str()) == 0) {
      spares_.push_back(spare);
      return;
    }
  }
  fs::remove(held, ec);
}

}  // namespace simpleci::runner
