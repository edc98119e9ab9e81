// The ResultWriter: a thread that writes result files (results.h) off the socket loop.
//
// Creating files is the dispatcher's biggest cost under load, so it overlaps with the loop here.
// Work comes in batches, processed in the order they were pushed (so a newer result for a commit
// always lands after an older one); a done batch comes back through take_done() with the files
// that could not be written, which PendingFiles retries. It owns its thread, the queue of batches
// and an eventfd that tells the loop when batches are done. Nothing waits for the files:
// RESULT_ACK leaves at the store's commit (or its flush), never at the files.
#pragma once

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "messages/messages.h"

namespace simpleci::dispatcher {

class ResultWriter {
 public:
  struct Batch {
    std::vector<std::pair<msg::JobSummary, std::string>> files;
    size_t output_bytes = 0;            // sum of the files' output sizes
    std::vector<std::string> removals;  // result names whose two files go (pruned jobs)
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
  // True while a pushed batch is not written yet or not taken back by take_done().
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
