#include "runner/held_results.h"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include "common/fsutil.h"
#include "messages/codec.h"

namespace simpleci::runner {

namespace fs = std::filesystem;

namespace {

constexpr const char* kSparePrefix = "spare-";

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
    std::string spare_err;  // a spare that cannot be used is gone: try the next, or a new file
    if (write_file_via(spare, target, data, false, &spare_err)) return true;
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
