// The runner's protocol logic (PROTOCOL.md "Runners"), free of sockets and real time: register
// until welcomed, heartbeat both ways, reconnect with backoff when the dispatcher goes silent,
// run each JOB in a free slot (checkout on a worker thread, then the executor), keep every
// result on disk until it is acknowledged, and drain on request. Single-threaded apart from
// the checkout threads it starts; tests drive it with a FakeClock and fakes.
#pragma once

#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "messages/codec.h"
#include "net/dealer.h"
#include "common/logging.h"
#include "runner/executor.h"
#include "runner/held_results.h"
#include "runner/workspace.h"

namespace simpleci::runner {

using net::Link;

struct Options {
  std::string name;
  uint32_t capacity = 1;
  std::filesystem::path work_dir;  // <clone>/.git/simpleci: unacknowledged results live here
  // Run for a commit without .simpleci/test when the JOB's own command is not trusted.
  std::string test_command{msg::kDefaultTestCommand};
  // Whether the JOB's test_command may be run (the dispatcher is authenticated: trust.h). Also
  // whether a repository's URL may be taken from the JOB or the WELCOME.
  bool trust_wire_command = false;
  // What REGISTER says: the labels (automatic ones included, labels.h), whether the positional
  // clone was given (the unnamed repository) and whether --cache was (every named one).
  std::vector<std::string> labels{};
  bool serves_unnamed = true;
  bool serves_all = false;
  // --repo-url NAME=URL: the URL this runner uses for NAME, whoever the dispatcher is.
  std::map<std::string, std::string> repo_urls{};
};

class Runner {
 public:
  Runner(Clock& clock, Link& link, Executor& exec, Workspace& ws, Options opt);
  ~Runner();

  // Loads unacknowledged results from disk and sends the first REGISTER.
  bool start(std::string* err);
  void on_frames(const std::string& header, const std::string& body);
  // Timers: registration, heartbeats, silence, resends, output chunks, executor polling.
  void tick();
  // Collects finished checkouts (worker threads); the loop calls it when checkout_fd() fires.
  void collect_checkouts();
  // Test helper: waits for every running checkout thread, then collects.
  void wait_checkouts();
  // SIGTERM: send DRAIN, take no new jobs. done() once nothing runs and nothing is unacked (or
  // the wait for acks passed 3 heartbeat intervals).
  void drain();
  bool done() const;
  // Set when the dispatcher speaks another protocol version: the runner stops (done()) and its
  // main prints this one line and exits 1.
  const std::string& version_error() const { return version_error_; }

  int checkout_fd() const { return event_fd_; }
  bool registered() const { return registered_; }
  size_t pending_results() const { return pending_.size(); }
  size_t active_jobs() const { return slots_used(); }
  Millis next_wakeup() const;  // how long the loop may sleep

 private:
  struct Slot {
    std::optional<msg::Job> job;
    bool checking_out = false, running = false, cancelled = false;
    int64_t started_ms = 0;
    SteadyTime last_streamed{};
    std::thread worker;  // the checkout of the slot's current job (the slot's repository stays open)
  };
  struct Pending {
    msg::Result result;
    SteadyTime last_sent{};
  };
  struct CheckoutDone {
    int slot;
    Prepared outcome;
    std::string workdir, error;
  };

  void send(const msg::Message& m);
  void send_register();
  void accept_job(const msg::Job& job);
  void start_next();
  // What the slot's job checks out: its repository and, for a named one, the URL in force
  // (PROTOCOL.md trust rule). False with the one-line reason when this runner cannot serve it.
  bool checkout_of(const msg::Job& job, Checkout* c, std::string* err) const;
  void start_checkout(int slot, Checkout c);
  bool output_to_stream(const Slot& s) const;
  void run_job(int slot, const std::string& workdir);
  // The shell command for a job whose commit has no .simpleci/test.
  const std::string& command_for(const msg::Job& job);
  // complete(): finish() and then start the next waiting job.
  void complete(int slot, msg::JobStatus st, int32_t exit_code, std::string output,
                bool truncated);
  void finish(int slot, msg::JobStatus st, int32_t exit_code, std::string output, bool truncated);
  void cancel_job(uint64_t job_id);
  void on_ack(const msg::ResultAck& a);
  void stream_output();
  void stream_rest(const Slot& s, const Finished& f);
  size_t slots_used() const;

  Clock& clock_;
  Link& link_;
  Executor& exec_;
  Workspace& ws_;
  Options opt_;
  std::vector<Slot> slots_;
  HeldResults held_;
  std::deque<msg::Job> waiting_;
  std::map<std::pair<uint64_t, uint32_t>, Pending> pending_;
  bool registered_ = false, draining_ = false;
  Millis hb_{1000};
  SteadyTime last_heard_{}, last_hb_sent_{}, last_register_{}, reconnect_at_{}, drain_since_{};
  bool reconnect_pending_ = false;
  Millis backoff_{1000};
  int event_fd_ = -1;
  std::mutex done_mu_;
  std::vector<CheckoutDone> done_;
  LogLimiter bad_log_;
  std::string version_error_;
  std::set<std::string> ignored_commands_;  // wire commands already warned about (capped)
  std::map<std::string, std::string> welcome_urls_;  // the last WELCOME's repositories with a URL
};

}  // namespace simpleci::runner
