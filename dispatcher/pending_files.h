// PendingFiles: result files from the store's COMMIT until they are on the disk. It answers
// "which result files are still to be written, or removed, or tried again".
//
// The files are a view of the store (results.h), so nothing here is the record: a lost file is
// written again from the store. It owns this round's files and removals (taken by the Round at
// its commit and handed back here once the round is durable), the ResultWriter thread
// (Config::async_files) or the synchronous write in its place, the count of files and output
// bytes handed to the writer and not yet reported written, and the failed writes waiting to be
// retried with backoff (their output is read again from the store, so nothing waits in memory
// while the disk is failing).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/logging.h"
#include "dispatcher/config.h"
#include "dispatcher/job_store.h"
#include "dispatcher/result_writer.h"

namespace simpleci::dispatcher {

// The dispatcher's counters, by name (reported by STATUS).
using Counters = std::map<std::string, uint64_t>;

class PendingFiles {
 public:
  PendingFiles(Clock& clock, JobStore& store, const Config& cfg, Counters& counters);

  // This round's result of a job: its files are written once the round is durable. It replaces
  // any failed write of the commit's files that waits for a retry.
  void add(msg::JobSummary s, std::string output);
  // A pruned job's files go once this round is durable (only files the job owns).
  void remove(const std::string& name, uint64_t job_id);  // name: results.h result_name
  // The files written and removed at this round's end; the round starts over empty.
  ResultWriter::Batch take_round();
  // This round's commit failed: its files are forgotten.
  void drop_round();

  // A durable round's files: handed to the writer, or written here without one.
  void write(ResultWriter::Batch b);
  // Readable when the writer finished batches: then call on_written(). -1 without a writer.
  int writer_fd() const { return writer_ ? writer_->fd() : -1; }
  void on_written();
  // Waits until the writer handled every batch handed to it.
  void finish();

  // Files the start-up pass could not write, as (commit, job id): retried like any failed write.
  void retry_later(const std::vector<std::pair<std::string, uint64_t>>& failed);
  // Reads the output of due retries from the store into this round (bounded per call).
  void retry_due();

  size_t to_retry() const { return retries_.size(); }
  size_t writer_backlog() const { return writer_backlog_; }
  size_t writer_bytes() const { return writer_backlog_bytes_; }
  size_t round_bytes() const { return round_.output_bytes; }

 private:
  struct Retry {  // a commit's newest failed write
    uint64_t job_id = 0;
    SteadyTime due{};
    Millis backoff{};
    bool in_flight = false;  // handed to the writer again, outcome not known yet
  };
  void done(const ResultWriter::Batch& b);
  void failed(const msg::JobSummary& s, const std::string& why);
  // The retry's job, if it still owns its commit's files; false when the store cannot be read.
  bool retry_job(const Retry& r, std::optional<JobRow>* row);

  Clock& clock_;
  JobStore& store_;
  const Config& cfg_;
  Counters& counters_;
  ResultWriter::Batch round_;  // this round's files and removals
  std::unique_ptr<ResultWriter> writer_;
  size_t writer_backlog_ = 0;
  size_t writer_backlog_bytes_ = 0;
  std::unordered_map<std::string, Retry> retries_;  // by result name (results.h)
  LogLimiter log_;
};

}  // namespace simpleci::dispatcher
