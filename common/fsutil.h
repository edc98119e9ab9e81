// Small file helpers shared by the components.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

namespace simpleci {

// Writes data to path so that readers see either the old file or the whole new one: a
// temporary file beside it, then rename. With durable, the file and its folder are fsync'ed
// (survives power loss, costs a disk flush). Returns false with *err on any failure, leaving
// the old file intact.
bool write_file_atomic(const std::filesystem::path& path, std::string_view data, bool durable,
                       std::string* err);

// The same through the temporary file tmp, which may already exist: it is written over (its
// inode reused), then renamed to path. On failure tmp is removed.
bool write_file_via(const std::filesystem::path& tmp, const std::filesystem::path& path, std::string_view data,
                    bool durable, std::string* err);

// Reads at most max_bytes of a file. Returns false with *err when it cannot be read or is
// larger than max_bytes.
bool read_file(const std::filesystem::path& path, size_t max_bytes, std::string* out,
               std::string* err);

// Creates a folder (and parents) and checks it is writable. One-line *err on failure.
bool ensure_writable_dir(const std::filesystem::path& dir, std::string* err);

// Like ensure_writable_dir, but the folder itself, when this call creates it, gets exactly
// `mode` (whatever the umask; parents are made as usual). A folder that already exists keeps
// its mode — someone chose it — and *wider tells whether it grants bits beyond `mode`.
bool ensure_dir_with_mode(const std::filesystem::path& dir, unsigned mode, bool* wider,
                          std::string* err);

}  // namespace simpleci
