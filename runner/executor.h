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
  // Live output the runner had not streamed when the job ended (it goes before RESULT), and
  // the stream position of its first byte.
  std::string unsent;
  uint64_t unsent_offset = 0;
};

class Executor {
 public:
  virtual ~Executor() = default;
  virtual bool start(const RunSpec& spec, std::string* err) = 0;
  // Ends a job (its whole process group) without a result.
  virtual void cancel(uint64_t job_id) = 0;
  // Non-blocking: reads output, enforces timeouts, reaps. Returns jobs that ended.
  virtual std::vector<Finished> poll() = 0;
  // File descriptors worth waking up for (output pipes, and what signals a job's end).
  virtual std::vector<int> fds() const = 0;
  // How long the caller may sleep (on fds()) before poll() is due: until the next timeout, or
  // a short tick when the end of a job cannot be waited for on a descriptor.
  virtual Millis max_sleep() const = 0;
  virtual size_t running() const = 0;
  // A running job's output not streamed yet (for live OUTPUT chunks); nullptr for no such job.
  virtual LiveBacklog* live(uint64_t job_id) const = 0;
};

// Real processes. Each job runs under simpleci-supervise (runner/supervise_main.cpp, which
// explains what it guarantees: process-group and subreaper kill, SIGHUP when the runner dies),
// started with posix_spawn so the runner is never forked. The runner learns that a job ended
// from a pidfd of the supervisor and the end of its output pipe, both in fds(), so it can
// sleep until then instead of polling.
class ProcessExecutor final : public Executor {
 public:
  // supervisor: the path of simpleci-supervise (see supervisor_beside()).
  ProcessExecutor(Clock& clock, int kill_grace_ms, std::string supervisor)
      : clock_(clock), grace_ms_(kill_grace_ms), supervisor_(std::move(supervisor)) {}
  ~ProcessExecutor() override;

  bool start(const RunSpec& spec, std::string* err) override;
  void cancel(uint64_t job_id) override;
  std::vector<Finished> poll() override;
  std::vector<int> fds() const override;
  Millis max_sleep() const override;
  size_t running() const override { return jobs_.size(); }
  LiveBacklog* live(uint64_t job_id) const override;

 private:
  struct Proc {
    pid_t supervisor = -1;
    int out_fd = -1;
    int pid_fd = -1;  // readable once the supervisor ended; -1 when the kernel has no pidfd
    SteadyTime deadline{};
    bool timed_out = false, cancelled = false;
    std::unique_ptr<OutputCapture> capture;
  };
  void drain(Proc& p);
  static void close_fd(int& fd);

  Clock& clock_;
  int grace_ms_;
  std::string supervisor_;
  std::map<uint64_t, Proc> jobs_;
};

// simpleci-supervise in the folder of the running executable (they are built and installed
// together); "" with *err when it is missing or not executable.
std::string supervisor_beside(const std::string& self, std::string* err);

}  // namespace simpleci::runner
