// Result files under --results-dir: <commit> holds the output, <commit>.json the summary.
//
// The files are a view of the store, never the record: they are written after the job's
// transaction committed, a failed write is retried (Dispatcher), and at start reconcile_results()
// rewrites whatever is missing or differs from the store.
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "dispatcher/store.h"
#include "messages/messages.h"

namespace simpleci::dispatcher {

// Mode of a results folder the dispatcher creates: owner and group may read (a web server put
// in the dispatcher's group can serve the files), others get nothing, nobody else writes.
inline constexpr unsigned kResultsDirMode = 0750;

// The summary document written beside the output (keys listed in PROTOCOL.md).
std::string result_json(const msg::JobSummary& s);

// Writes both files atomically (temporary file + rename; with durable, each file and the folder
// are fsync'ed too). s.commit must be a validated commit id; anything else is refused, so
// nothing from the wire chooses a path. A folder removed meanwhile is made again.
bool write_result_files(const std::filesystem::path& dir, const msg::JobSummary& s,
                        const std::string& output, bool durable, std::string* err);

// Removes both files of a commit (a pruned job's). Files that are already gone are fine.
bool remove_result_files(const std::filesystem::path& dir, const std::string& commit,
                         std::string* err);

struct ReconcileStats {
  size_t checked = 0;        // commits whose newest final job owns files
  size_t rewritten = 0;      // of those, files missing or different, written again
  size_t failed = 0;         // could not be written (logged; the dispatcher retries them)
  std::vector<std::pair<std::string, uint64_t>> failed_jobs;  // (commit, job id) of those
  size_t temps_removed = 0;  // leftover <name>.tmp.* files of an interrupted write
};

// Start-up pass: removes leftover temporary files of interrupted writes, then, for every
// commit's newest final job that is not pruned, compares <commit>'s size with the stored
// output's and <commit>.json with the summary, and rewrites both when either differs or is
// missing. Streams the store (one output in memory at a time). False with *err only when the
// store cannot be read; a file that cannot be written is counted in stats->failed.
bool reconcile_results(Store& store, const std::filesystem::path& dir, bool durable,
                       ReconcileStats* stats, std::string* err);

}  // namespace simpleci::dispatcher

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace simpleci::dispatcher {

// Writes result files on its own thread, so creating files (the dispatcher's biggest cost
// under load) overlaps with the socket loop. Work comes in batches, processed in the order they
// were pushed (so a newer result for a commit always lands after an older one); a done batch
// comes back through take_done() with the files that could not be written, which the
// dispatcher retries. Nothing waits for the files: RESULT_ACK leaves after the store's commit.
class ResultWriter {
 public:
  struct Batch {
    std::vector<std::pair<msg::JobSummary, std::string>> files;
    size_t output_bytes = 0;            // sum of the files' output sizes
    std::vector<std::string> removals;  // commits whose two files go (pruned jobs)
    // Filled by write(): the summaries whose files could not be written, with why.
    std::vector<std::pair<msg::JobSummary, std::string>> failed;
  };

  ResultWriter(std::filesystem::path dir, bool durable);
  ~ResultWriter();  // finishes every pushed batch first
  ResultWriter(const ResultWriter&) = delete;
  ResultWriter& operator=(const ResultWriter&) = delete;

  // Writes (and removes) a batch's files in the calling thread, filling b.failed.
  static void write(const std::filesystem::path& dir, bool durable, Batch& b);

  void push(Batch b);
  std::vector<Batch> take_done();
  // Readable (eventfd) when batches are done.
  int fd() const { return event_fd_; }
  bool busy();

 private:
  void run();

  std::filesystem::path dir_;
  bool durable_;
  int event_fd_ = -1;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Batch> todo_, done_;
  size_t in_progress_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace simpleci::dispatcher
