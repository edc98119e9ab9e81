// Running a job's test command: the seam between the runner's logic and real processes.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "messages/messages.h"
#include "runner/capture.h"

namespace simpleci::runner {

struct RunSpec {
  uint64_t job_id = 0;
  std::string workdir;
  std::vector<std::string> argv;
  std::vector<std::string> env;  // extra NAME=VALUE entries
  uint32_t timeout_s = 600;
  uint64_t output_cap = msg::kMaxOutputCap;
};

struct Finished {
  uint64_t job_id = 0;
  msg::JobStatus status = msg::JobStatus::kPassed;  // passed, failed or timeout
  int32_t exit_code = -1;
  std::string output;
  bool truncated = false;
};

class Executor {
 public:
  virtual ~Executor() = default;
  virtual bool start(const RunSpec& spec, std::string* err) = 0;
  // Ends a job (its whole process group) without a result.
  virtual void cancel(uint64_t job_id) = 0;
  // Non-blocking: reads output, enforces timeouts, reaps. Returns jobs that ended.
  virtual std::vector<Finished> poll() = 0;
  // File descriptors worth waking up for (output pipes).
  virtual std::vector<int> fds() const = 0;
  virtual size_t running() const = 0;
  // Output captured so far from the start of the stream (for live OUTPUT chunks).
  virtual const std::string* head(uint64_t job_id) const = 0;
};

// Real processes. Each job runs under a small supervisor process (a child of the runner) that
// starts the test in a new process group, asks the kernel for SIGHUP when the runner dies
// (PR_SET_PDEATHSIG), and on SIGTERM (timeout, cancel) or SIGHUP (runner died) ends the
// group: SIGTERM, then SIGKILL after the grace period (at most 1 s when the runner died). The
// supervisor is a child subreaper (PR_SET_CHILD_SUBREAPER): whatever the test left behind,
// even in another session (setsid, double fork, nohup), ends up as its child, and however the
// job ended it SIGKILLs every remaining descendant and reaps them before it exits itself.
class ProcessExecutor final : public Executor {
 public:
  ProcessExecutor(Clock& clock, int kill_grace_ms) : clock_(clock), grace_ms_(kill_grace_ms) {}
  ~ProcessExecutor() override;

  bool start(const RunSpec& spec, std::string* err) override;
  void cancel(uint64_t job_id) override;
  std::vector<Finished> poll() override;
  std::vector<int> fds() const override;
  size_t running() const override { return jobs_.size(); }
  const std::string* head(uint64_t job_id) const override;

 private:
  struct Proc {
    pid_t supervisor = -1;
    int out_fd = -1;
    SteadyTime deadline{};
    bool timed_out = false, cancelled = false, exited = false, eof = false;
    int status = 0;
    std::unique_ptr<OutputCapture> capture;
  };
  void drain(Proc& p);

  Clock& clock_;
  int grace_ms_;
  std::map<uint64_t, Proc> jobs_;
};

}  // namespace simpleci::runner
