#include "dispatcher/results.h"

#include <nlohmann/json.hpp>

#include "messages/clock.h"
#include "messages/fsutil.h"
#include "messages/validate.h"

namespace simpleci::dispatcher {

namespace fs = std::filesystem;

std::string result_json(const msg::JobSummary& s) {
  nlohmann::json j = {
      {"commit", s.commit},
      {"branch", s.branch},
      {"status", std::string(msg::to_string(s.status))},
      {"exit_code", s.exit_code},
      {"duration_ms", s.duration_ms},
      {"runner", s.runner},
      {"attempt", s.attempt},
      {"job_id", s.job_id},
      {"started_at", s.started_at_ms ? iso8601_utc(s.started_at_ms) : ""},
      {"finished_at", s.finished_at_ms ? iso8601_utc(s.finished_at_ms) : ""},
      {"truncated", s.truncated},
  };
  // The runner name and branch came from the wire; dump() escapes them, and replaces any
  // invalid UTF-8 instead of throwing.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

bool write_result_files(const std::filesystem::path& dir, const msg::JobSummary& s,
                        const std::string& output, std::string* err) {
  if (!is_commit_id(s.commit)) {
    *err = "refusing to write results for a bad commit id";
    return false;
  }
  auto write_both = [&] {
    return write_file_atomic(dir / s.commit, output, false, err) &&
           write_file_atomic(dir / (s.commit + ".json"), result_json(s), false, err);
  };
  if (write_both()) return true;
  // Someone removed the folder (say, to clear old results): make it again and retry once.
  std::error_code ec;
  if (fs::exists(dir, ec) || !fs::create_directories(dir, ec)) return false;
  return write_both();
}

}  // namespace simpleci::dispatcher

#include <sys/eventfd.h>
#include <unistd.h>

namespace simpleci::dispatcher {

ResultWriter::ResultWriter(std::filesystem::path dir)
    : dir_(std::move(dir)), event_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  thread_ = std::thread([this] { run(); });
}

ResultWriter::~ResultWriter() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  ::close(event_fd_);
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
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stop_ || !todo_.empty(); });
    if (todo_.empty()) return;  // stopping, and everything is written
    Batch b = std::move(todo_.front());
    todo_.pop_front();
    ++in_progress_;
    lock.unlock();
    for (const auto& [s, output] : b.files) {
      std::string err;
      if (!write_result_files(dir_, s, output, &err)) {
        b.errors.push_back("job " + std::to_string(s.job_id) + ": " + err);
      }
    }
    lock.lock();
    --in_progress_;
    done_.push_back(std::move(b));
    uint64_t one = 1;
    (void)!::write(event_fd_, &one, sizeof one);
  }
}

}  // namespace simpleci::dispatcher
