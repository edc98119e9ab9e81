#include "common/fsutil.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

namespace simpleci {

namespace {

std::string errno_text(const std::string& what, const std::filesystem::path& p) {
  return what + " '" + p.string() + "': " + std::strerror(errno);
}

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::string temp_suffix() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  return ".tmp." + std::to_string(::getpid()) + "." + std::to_string(rng() % 1000000000);
}

}  // namespace

bool write_file_atomic(const std::filesystem::path& path, std::string_view data, bool durable,
                       std::string* err) {
  return write_file_via(path.string() + temp_suffix(), path, data, durable, err);
}

bool write_file_via(const std::filesystem::path& tmp, const std::filesystem::path& path, std::string_view data,
                    bool durable, std::string* err) {
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    *err = errno_text("cannot create", tmp);
    return false;
  }
  bool ok = write_all(fd, data);
  if (!ok) *err = errno_text("cannot write", tmp);
  if (ok && durable && ::fsync(fd) != 0) {
    ok = false;
    *err = errno_text("cannot fsync", tmp);
  }
  if (::close(fd) != 0 && ok) {
    ok = false;
    *err = errno_text("cannot close", tmp);
  }
  if (ok && ::rename(tmp.c_str(), path.c_str()) != 0) {
    ok = false;
    *err = errno_text("cannot rename onto", path);
  }
  if (!ok) {
    ::unlink(tmp.c_str());
    return false;
  }
  if (durable) {
    const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : ".";
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }
  return true;
}

bool read_file(const std::filesystem::path& path, size_t max_bytes, std::string* out,
               std::string* err) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *err = errno_text("cannot open", path);
    return false;
  }
  out->clear();
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *err = errno_text("cannot read", path);
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    if (out->size() + static_cast<size_t>(n) > max_bytes) {
      *err = "file '" + path.string() + "' is larger than " + std::to_string(max_bytes) + " bytes";
      ::close(fd);
      return false;
    }
    out->append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return true;
}

bool ensure_writable_dir(const std::filesystem::path& dir, std::string* err) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    *err = "cannot create folder '" + dir.string() + "': " + ec.message();
    return false;
  }
  if (!std::filesystem::is_directory(dir, ec)) {
    *err = "'" + dir.string() + "' is not a folder";
    return false;
  }
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    *err = errno_text("cannot write to folder", dir);
    return false;
  }
  return true;
}

bool ensure_dir_with_mode(const std::filesystem::path& dir, unsigned mode, bool* wider,
                          std::string* err) {
  std::error_code ec;
  const bool existed = std::filesystem::exists(dir, ec);
  if (!ensure_writable_dir(dir, err)) return false;
  struct stat st {};
  if (!existed) {
    if (::chmod(dir.c_str(), mode) != 0) {
      *err = errno_text("cannot set the mode of folder", dir);
      return false;
    }
  } else if (::stat(dir.c_str(), &st) != 0) {
    *err = errno_text("cannot read the mode of folder", dir);
    return false;
  }
  *wider = existed && (st.st_mode & 0777 & ~mode) != 0;
  return true;
}

}  // namespace simpleci
