// What `simpleci watch` makes of a job's WATCH_REPLYs: the output not shown yet (for stdout) and
// what happens to the job (for stderr). No I/O, so tests feed it replies.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "messages/messages.h"

namespace simpleci::client {

// A job number (1 or more, up to 18 digits) or a commit id (40 or 64 hex characters, normalised
// to lower case). False when target is neither.
bool parse_watch_target(const std::string& target, uint64_t* job, std::string* commit);

class WatchView {
 public:
  explicit WatchView(uint64_t job) : job_(job) {}

  // The next request: the output from the first byte not shown yet, of the attempt seen last.
  msg::WatchRequest next_request(uint64_t request_id) const;

  struct Step {
    std::vector<std::string> notes;  // lines for stderr, before the output ("simpleci: job 7 queued")
    std::string output;              // bytes for stdout, none shown before
    bool ended = false;              // the job is final: summary and exit_code are set
    std::string summary;             // "simpleci: job 7 passed (exit 0, 1.2 s, runner r1, attempt 1)"
    int exit_code = 0;               // 0 passed, kJobNotPassed otherwise
  };
  // Takes one reply to next_request(). A new attempt starts the output again at 0 (a note says
  // so after the first); bytes the dispatcher no longer holds are named in a note.
  Step take(const msg::WatchReply& w);
  // Takes a pushed chunk of the job's live output. When bytes before it were not shown (or it
  // is of a newer attempt), nullopt: ask with next_request() first, then offer it again with
  // skip_gap (what is still missing was skipped by the runner, and a note says so). A chunk of
  // an older attempt shows nothing.
  std::optional<Step> take_chunk(const msg::JobOutput& o, bool skip_gap);

 private:
  uint64_t job_;
  uint32_t attempt_ = 0;
  uint64_t offset_ = 0;  // output bytes of this attempt shown
  std::string runner_;
  std::optional<msg::JobStatus> shown_;
};

}  // namespace simpleci::client
