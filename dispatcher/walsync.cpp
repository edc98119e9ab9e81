#include "dispatcher/walsync.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "dispatcher/worker.h"

namespace simpleci::dispatcher {

std::unique_ptr<WalSyncer> WalSyncer::open(const std::string& db_path, std::string* err) {
  const std::string wal = db_path + "-wal";
  const int wal_fd = ::open(wal.c_str(), O_RDONLY | O_CLOEXEC);
  if (wal_fd < 0) {
    *err = "cannot open " + wal + " (is the store open in WAL mode?): " + std::strerror(errno);
    return nullptr;
  }
  std::filesystem::path dir = std::filesystem::path(db_path).parent_path();
  if (dir.empty()) dir = std::filesystem::current_path();
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0 || ::fsync(dir_fd) != 0) {
    *err = "cannot flush folder ";
    err->append(dir.string()).append(": ").append(std::strerror(errno));
    if (dir_fd >= 0) ::close(dir_fd);
    ::close(wal_fd);
    return nullptr;
  }
  ::close(dir_fd);
  const int event_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (event_fd < 0) {
    *err = std::string("eventfd: ") + std::strerror(errno);
    ::close(wal_fd);
    return nullptr;
  }
  return std::unique_ptr<WalSyncer>(new WalSyncer(wal_fd, event_fd));
}

WalSyncer::WalSyncer(int wal_fd, int event_fd) : wal_fd_(wal_fd), event_fd_(event_fd) {
  thread_ = std::thread([this] { run(); });
}

WalSyncer::~WalSyncer() {
  stop_worker(mu_, cv_, &stop_, thread_);
  ::close(wal_fd_);
  ::close(event_fd_);
}

void WalSyncer::committed(uint64_t seq) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (seq <= requested_) return;
    requested_ = seq;
  }
  cv_.notify_all();
}

bool WalSyncer::durable(uint64_t* seq, std::string* err) {
  uint64_t n;
  (void)!::read(event_fd_, &n, sizeof n);
  std::lock_guard<std::mutex> lock(mu_);
  *seq = done_;
  if (failed_) *err = error_;
  return !failed_;
}

bool WalSyncer::wait_idle(std::string* err) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return failed_ || done_ >= requested_; });
  if (failed_) *err = error_;
  return !failed_;
}

void WalSyncer::run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stop_ || (!failed_ && requested_ > done_); });
    if (stop_) return;
    // Every round numbered up to target committed before this flush begins: it covers them all.
    const uint64_t target = requested_;
    lock.unlock();
    const int rc = ::fdatasync(wal_fd_);
    const int e = errno;
    lock.lock();
    if (rc != 0) {
      failed_ = true;
      error_ = std::string("fdatasync of the store's WAL failed: ") + std::strerror(e);
    } else {
      done_ = target;
    }
    cv_.notify_all();
    const uint64_t one = 1;
    (void)!::write(event_fd_, &one, sizeof one);
  }
}

}  // namespace simpleci::dispatcher
