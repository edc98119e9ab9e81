// Result files under --results-dir: <commit> holds the output, <commit>.json the summary.
#pragma once

#include <filesystem>
#include <string>

#include "messages/messages.h"

namespace simpleci::dispatcher {

// The summary document written beside the output (keys listed in PROTOCOL.md).
std::string result_json(const msg::JobSummary& s);

// Writes both files atomically (temporary file + rename; not fsync'ed: the store is the
// durable record and the files are rewritten from it). s.commit must be a validated commit id;
// anything else is refused, so nothing from the wire chooses a path.
bool write_result_files(const std::filesystem::path& dir, const msg::JobSummary& s,
                        const std::string& output, std::string* err);

}  // namespace simpleci::dispatcher

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace simpleci::dispatcher {

// Writes result files on its own thread, so creating files (the dispatcher's biggest cost
// under load) overlaps with the socket loop. Work comes in batches: a batch's files are written,
// then the batch comes back through take_done() with the messages that had to wait for them
// (RESULT_ACK promises the files exist), in the order the batches were pushed.
class ResultWriter {
 public:
  using Outgoing = std::vector<std::pair<std::string, msg::Message>>;
  struct Batch {
    std::vector<std::pair<msg::JobSummary, std::string>> files;
    size_t output_bytes = 0;  // sum of the files' output sizes
    Outgoing messages;
    std::vector<std::string> errors;  // filled by the writer
  };

  explicit ResultWriter(std::filesystem::path dir);
  ~ResultWriter();  // finishes every pushed batch first
  ResultWriter(const ResultWriter&) = delete;
  ResultWriter& operator=(const ResultWriter&) = delete;

  void push(Batch b);
  std::vector<Batch> take_done();
  // Readable (eventfd) when batches are done.
  int fd() const { return event_fd_; }
  bool busy();

 private:
  void run();

  std::filesystem::path dir_;
  int event_fd_ = -1;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Batch> todo_, done_;
  size_t in_progress_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace simpleci::dispatcher
