#include "dispatcher/pending_files.h"

#include <poll.h>

#include <algorithm>
#include <set>

#include <spdlog/spdlog.h>

#include "dispatcher/results.h"

namespace simpleci::dispatcher {

namespace {
// A result file write that failed is tried again after this, doubling up to the longest.
constexpr Millis kFirstFileRetry(250);
constexpr Millis kLongestFileRetry(30000);
// Output read again from the store for retries, at most per round, so a long list of retries
// never stalls the loop.
constexpr size_t kRetryBytesPerRound = 16u << 20;
}  // namespace

PendingFiles::PendingFiles(Clock& clock, JobStore& store, const Config& cfg, Counters& counters)
    : clock_(clock), store_(store), cfg_(cfg), counters_(counters) {
  if (cfg_.async_files) writer_ = std::make_unique<ResultWriter>(cfg_.results_dir, cfg_.fsync_results);
}

void PendingFiles::add(msg::JobSummary s, std::string output) {
  retries_.erase(result_name(s));  // this newer result's files replace whatever failed before
  round_.output_bytes += output.size();
  round_.files.emplace_back(std::move(s), std::move(output));
}

void PendingFiles::remove(const std::string& name, uint64_t job_id) {
  round_.removals.push_back(name);
  if (auto it = retries_.find(name); it != retries_.end() && it->second.job_id == job_id) {
    retries_.erase(it);
  }
}

ResultWriter::Batch PendingFiles::take_round() { return std::exchange(round_, ResultWriter::Batch{}); }

void PendingFiles::drop_round() { round_ = ResultWriter::Batch{}; }

void PendingFiles::write(ResultWriter::Batch b) {
  if (b.files.empty() && b.removals.empty()) return;
  if (writer_) {
    writer_backlog_ += b.files.size();
    writer_backlog_bytes_ += b.output_bytes;
    writer_->push(std::move(b));
  } else {
    ResultWriter::write(cfg_.results_dir, cfg_.fsync_results, b);
    done(b);
  }
}

void PendingFiles::on_written() {
  if (!writer_) return;
  for (auto& b : writer_->take_done()) {
    writer_backlog_ -= std::min(writer_backlog_, b.files.size());
    writer_backlog_bytes_ -= std::min(writer_backlog_bytes_, b.output_bytes);
    done(b);
  }
}

void PendingFiles::finish() {
  while (writer_ && writer_->busy()) {
    pollfd p{writer_->fd(), POLLIN, 0};
    ::poll(&p, 1, 100);
    on_written();
  }
}

// The writer's verdict on a batch: a retried write that worked ends its retry; a failed one is
// (re)scheduled with backoff, unless a newer result of the same commit has replaced it.
void PendingFiles::done(const ResultWriter::Batch& b) {
  std::set<uint64_t> failed_ids;
  for (const auto& [s, why] : b.failed) {
    failed_ids.insert(s.job_id);
    failed(s, why);
  }
  for (const auto& [s, output] : b.files) {
    auto it = retries_.find(result_name(s));
    if (it != retries_.end() && it->second.job_id == s.job_id && it->second.in_flight &&
        !failed_ids.count(s.job_id)) {
      spdlog::info("result files of job {} ({}) written at last", s.job_id, s.commit);
      retries_.erase(it);
    }
  }
}

void PendingFiles::failed(const msg::JobSummary& s, const std::string& why) {
  ++counters_["results.file_errors"];
  auto [it, fresh] = retries_.try_emplace(result_name(s), Retry{s.job_id, {}, kFirstFileRetry, false});
  Retry& r = it->second;
  if (!fresh && r.job_id > s.job_id) return;  // a newer result's write is pending
  if (fresh || r.job_id != s.job_id) r.backoff = kFirstFileRetry;
  else if (r.in_flight) r.backoff = std::min(r.backoff * 2, kLongestFileRetry);
  r.job_id = s.job_id;
  r.in_flight = false;
  r.due = clock_.now() + r.backoff;
  uint64_t held = 0;
  if (log_.allow(clock_.now(), &held)) {
    spdlog::error("cannot write the result files of job {} ({}): {}; retrying in {} ms{}", s.job_id,
                  s.commit, why, r.backoff.count(), LogLimiter::held_back(held));
  }
}

void PendingFiles::retry_later(const std::vector<std::pair<std::string, uint64_t>>& failed) {
  for (const auto& [commit, id] : failed) {
    retries_[commit] = Retry{id, clock_.now() + kFirstFileRetry, kFirstFileRetry, false};
  }
}

bool PendingFiles::retry_job(const Retry& r, std::optional<JobRow>* row) {
  std::string err;
  JobRow found;
  uint64_t owner = 0;
  const Lookup l = store_.job(r.job_id, &found, &err);
  if (l == Lookup::kError ||
      (l == Lookup::kFound &&
       !store_.newest_final(found.summary.repo, found.summary.commit, found.summary.job_name, &owner, &err))) {
    spdlog::error("cannot read job {} to retry its result files: {}", r.job_id, err);
    return false;
  }
  // Gone (pruned, or replaced by a newer result) unless it still owns the files.
  if (l == Lookup::kFound && !found.pruned && owner == r.job_id) *row = std::move(found);
  return true;
}

void PendingFiles::retry_due() {
  if (retries_.empty()) return;
  const SteadyTime now = clock_.now();
  size_t bytes = 0;
  std::vector<std::string> gone;
  for (auto& [commit, r] : retries_) {
    if (r.in_flight || now < r.due) continue;
    if (bytes >= kRetryBytesPerRound) break;
    std::optional<JobRow> row;
    std::string output, err;
    if (retry_job(r, &row) && !row) {
      gone.push_back(commit);
      continue;
    }
    if (!row || !store_.output(r.job_id, &output, &err)) {
      if (row) spdlog::error("cannot read job {} to retry its result files: {}", r.job_id, err);
      r.due = now + r.backoff;
      continue;
    }
    ++counters_["results.file_retries"];
    r.in_flight = true;
    bytes += output.size();
    round_.output_bytes += output.size();
    round_.files.emplace_back(row->summary, std::move(output));
  }
  for (const auto& c : gone) retries_.erase(c);
}

}  // namespace simpleci::dispatcher
