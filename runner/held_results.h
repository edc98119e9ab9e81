// The runner's held results: one file per RESULT not yet acknowledged, under
// <clone>/.git/simpleci/results/<job>-<attempt>.result (the msgpack body of the RESULT), so that a
// result survives the runner's death. Files are not fsynced (docs/ARCHITECTURE.md says why).
//
// A file per job would cost an inode allocated and another freed per job, which on ext4 is the
// dearest thing a trivial job does (finding a free inode skips every recently deleted one). So an
// acknowledged file is not deleted: it is renamed to spare-<n> and written over by a later
// result, then renamed to that result's name: the rename keeps each step atomic, a file named
// .result is always complete.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "messages/bodies.h"

namespace simpleci::runner {

class HeldResults {
 public:
  static constexpr size_t kMaxSpares = 8;

  explicit HeldResults(std::filesystem::path dir) : dir_(std::move(dir)) {}

  // Makes the folder if needed and reads every held result (an unreadable one is logged and
  // skipped); spares found are kept for reuse. False with *err when the folder is unusable.
  bool load(std::vector<msg::Result>* out, std::string* err);
  // Writes r's file (over a spare when there is one). False with *err when it cannot.
  bool save(const msg::Result& r, std::string* err);
  // The file of (job, attempt) is no longer needed: it becomes a spare, or is deleted.
  void release(uint64_t job, uint32_t attempt);

  size_t spares() const { return spares_.size(); }
  std::filesystem::path path_of(uint64_t job, uint32_t attempt) const;

 private:
  std::filesystem::path dir_;
  std::vector<std::filesystem::path> spares_;
  uint64_t next_spare_ = 0;
};

}  // namespace simpleci::runner
