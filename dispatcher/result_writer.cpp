#include "dispatcher/result_writer.h"

#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "dispatcher/results.h"
#include "dispatcher/worker.h"

namespace simpleci::dispatcher {

namespace {
constexpr int kWriterNice = 10;
}  // namespace

ResultWriter::ResultWriter(std::filesystem::path dir, bool durable)
    : dir_(std::move(dir)), durable_(durable), event_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  thread_ = std::thread([this] { run(); });
}

ResultWriter::~ResultWriter() {
  stop_worker(mu_, cv_, &stop_, thread_);
  ::close(event_fd_);
}

void ResultWriter::write(const std::filesystem::path& dir, bool durable, Batch& b) {
  for (const auto& [s, output] : b.files) {
    std::string err;
    if (!write_result_files(dir, s, output, durable, &err)) b.failed.emplace_back(s, err);
  }
  for (const auto& commit : b.removals) {
    std::string err;
    if (!remove_result_files(dir, commit, &err)) spdlog::warn("prune: {}", err);
  }
}

void ResultWriter::push(Batch b) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    todo_.push_back(std::move(b));
  }
  cv_.notify_one();
}

std::vector<ResultWriter::Batch> ResultWriter::take_done() {
  uint64_t n;
  (void)!::read(event_fd_, &n, sizeof n);
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Batch> out(std::make_move_iterator(done_.begin()), std::make_move_iterator(done_.end()));
  done_.clear();
  return out;
}

bool ResultWriter::busy() {
  std::lock_guard<std::mutex> lock(mu_);
  return !todo_.empty() || in_progress_ > 0 || !done_.empty();
}

void ResultWriter::run() {
  // The files are a view of the store and nothing waits for them, so this thread yields the CPU
  // to the loop (and, on a shared machine, to the runners): Linux applies a nice value to the
  // calling thread alone.
  (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), kWriterNice);
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stop_ || !todo_.empty(); });
    if (todo_.empty()) return;  // stopping, and everything is written
    Batch b = std::move(todo_.front());
    todo_.pop_front();
    ++in_progress_;
    lock.unlock();
    write(dir_, durable_, b);
    lock.lock();
    --in_progress_;
    done_.push_back(std::move(b));
    uint64_t one = 1;
    (void)!::write(event_fd_, &one, sizeof one);
  }
}

}  // namespace simpleci::dispatcher
