// The dispatcher's logic, free of sockets: runner sessions, the job queue, heartbeats, requeue,
// results and client requests, as PROTOCOL.md describes them.
//
// The server loop feeds it decoded-or-not frames (on_message), connection losses
// (on_disconnect) and the passage of time (tick), then calls flush(). Everything that changes
// the store between two flushes is one SQLite transaction (a round). Its COMMIT is not flushed to
// the disk on the loop thread: a Syncer does that on its own (walsync.h), and the replies that
// promise durability wait for it, so a power cut never leaves a peer believing something the
// store does not hold. Held until the round is durable: ACCEPTED, RESULT_ACK, OK and ERROR (an
// ERROR never overtakes a held reply to the same peer), and the round's result files. Sent right
// after the COMMIT: JOB, CANCEL_JOB, HEARTBEAT, WELCOME, REREGISTER and the STATUS, RESULTS and
// WATCH replies: none promises anything a crash could take back (a JOB whose dispatch is lost
// is cancelled when its runner registers again; a lost final state makes its re-sent result
// stale). The loop keeps reading and committing while earlier rounds wait for their flush.
// Time comes from a Clock, so tests drive heartbeat expiry with a FakeClock. Single-threaded.
#pragma once

#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "dispatcher/results.h"
#include "dispatcher/store.h"
#include "dispatcher/walsync.h"
#include "common/clock.h"
#include "messages/codec.h"
#include "common/logging.h"
#include "net/roles.h"

namespace simpleci::dispatcher {

struct Config {
  uint32_t heartbeat_ms = msg::kDefaultHeartbeatMs;
  uint32_t max_attempts = msg::kDefaultMaxAttempts;
  uint32_t job_timeout_s = msg::kDefaultJobTimeoutS;
  uint64_t output_cap = msg::kMaxOutputCap;
  std::string test_command{msg::kDefaultTestCommand};
  std::filesystem::path results_dir = "test_results";
  bool require_identity = false;  // CURVE: a runner's name must equal its key's name
  bool async_files = false;       // write result files on a ResultWriter thread
  bool fsync_results = false;     // fsync each result file (the store is the durable record)
  size_t live_window = msg::kDefaultLiveWindow;  // newest output bytes kept per running job for watchers
  uint64_t max_queued = msg::kDefaultMaxQueued;  // a COMMIT or RETRY past this many queued jobs: queue_full
  uint32_t prune_after_days = 0;  // prune final jobs older than this, hourly; 0 = never
};

// Where replies go. The server implements it over the ROUTER; tests capture.
class Outbox {
 public:
  virtual ~Outbox() = default;
  // False when the peer is gone or its queue is full; the message is then dropped. An outbox
  // with a reply budget (net::ReplyBudget) may answer a reply with ERROR busy instead.
  virtual bool send(std::string_view peer, const msg::Message& m) = 0;
  // True while an output-carrying reply (RESULTS_REPLY with output, WATCH_REPLY with data) sent
  // to peer is not released by the transport: the dispatcher then answers another request for
  // output with ERROR busy before reading any output.
  virtual bool output_in_flight(std::string_view /*peer*/) const { return false; }
  // Replies the outbox refused for the peer's budget; reported as send.over_budget.
  virtual uint64_t over_budget() const { return 0; }
};

class Dispatcher {
 public:
  // Without a syncer every commit counts as durable at once (an in-memory or test store).
  Dispatcher(Clock& clock, Store& store, Outbox& out, Config cfg, Syncer* syncer = nullptr);

  // Loads queued and running jobs from the store (after a restart). Running jobs wait for their
  // runner to come back for 3 heartbeat intervals, then are requeued.
  bool recover(std::string* err);
  // Start-up: makes the result files agree with the store (see reconcile_results). Call once,
  // before serving. False only when the store cannot be read.
  bool reconcile_files(std::string* err);

  // Prunes at most `limit` final jobs that finished more than `days` ago, in this round's
  // transaction; their files go after the commit (only files the pruned job owns). Returns how
  // many were pruned (the count is void if this round's commit then fails).
  size_t prune(uint32_t days, size_t limit);

  // One message from peer: frames are what follows the routing id (header, body). fd is the
  // connection it arrived on (-1 unknown); user_id the CURVE key name ("" without CURVE).
  void on_message(std::string_view peer, int fd, std::span<const std::string_view> frames,
                  std::string_view user_id = {});
  // The connection with this file descriptor closed: its runner is dead now.
  void on_disconnect(int fd);
  // Heartbeats out, dead runners swept, queued jobs dispatched. Call at least every
  // heartbeat_ms / 2.
  void tick();
  // Commits the transaction, sends what needs no flush, hands the round to the syncer and keeps
  // the rest until on_synced() reports the round durable. False when the commit failed (then the
  // in-memory state is reloaded from the store and the waiting senders get ERROR
  // storage_failure or nothing, and will retry).
  bool flush();

  // Readable when the syncer has news: then call on_synced(). -1 without a syncer.
  int syncer_fd() const { return syncer_ ? syncer_->fd() : -1; }
  // Sends the replies (and writes the files) of the rounds the syncer reports durable. False when
  // a flush failed: the error is logged once, the held replies are dropped unsent, and the
  // dispatcher must stop (sync_failed() stays true).
  bool on_synced();
  bool sync_failed() const { return sync_failed_; }
  // Rounds committed and waiting for their flush.
  size_t unsynced_rounds() const { return held_.size(); }

  // With async_files: readable when result files were written; then call on_written() to learn
  // which writes failed (they are retried from tick()). -1 without async_files.
  int writer_fd() const { return writer_ ? writer_->fd() : -1; }
  void on_written();
  // Shutdown: waits until the held rounds are durable (their replies sent, unless a flush
  // failed) and the writer has handled every result file handed to it.
  void finish_writes();
  // Result files whose write failed and waits to be retried (from tick(), with backoff).
  size_t files_to_retry() const { return retries_.size(); }
  // Result files handed to the writer and not yet written: the loop stops reading new
  // messages while this is large, so a slow disk cannot make memory grow without bound.
  size_t writer_backlog() const { return writer_backlog_; }
  // Output bytes of results whose files are not written yet (in the writer, waiting for their
  // round's flush or for this round's commit): the loop also stops reading while this is large,
  // since each result can hold 16 MiB.
  size_t unwritten_bytes() const { return writer_backlog_bytes_ + held_bytes_ + files_bytes_; }
  // Output bytes stored in this round's transaction: the loop ends a round (and commits) past a
  // bound, so one transaction (and the flush that follows it) stays small.
  size_t round_bytes() const { return files_bytes_; }

  // With CURVE: the names of the keys allowed now and their roles (after the authorised-keys
  // folder was read again). From then on a message under any other key name, or one its key's
  // role does not allow (net/roles.h), is refused: ERROR unauthorized with the request id
  // it carried, counted as rejected.unauthorized. Runners whose key is gone or is no longer a
  // runner's are ended at once.
  using Authorized = std::map<std::string, Role, std::less<>>;
  void set_authorized(Authorized keys);

  std::vector<msg::Counter> counters() const;
  uint64_t counter(const std::string& name) const;
  size_t queue_length() const { return queue_.size(); }
  size_t runner_count() const { return runners_.size(); }
  size_t running_count() const { return running_.size(); }

 private:
  struct Runner {
    std::string name, peer;
    int fd = -1;
    uint32_t capacity = 1;
    std::set<uint64_t> jobs;
    SteadyTime last_seen{}, last_sent{};
    int64_t last_seen_wall = 0;
    bool draining = false;
    uint32_t setup_failures = 0;  // in a row; reset by any other result
    SteadyTime paused_until{};    // gets no jobs before this (after repeated setup failures)
  };
  struct Active {  // a queued or running job
    msg::JobSummary s;
    SteadyTime orphan_since{};  // running without a live runner session (after a restart)
    bool orphaned = false;
    std::set<std::string> avoid;  // runners that could not set this job up
  };
  struct Live {  // the newest streamed output of a running attempt, for WATCH
    uint32_t attempt = 0;
    uint64_t base = 0;  // offset of data[0] in the attempt's output
    std::string data;   // between live_window and 2 * live_window bytes once full
  };
  struct Deferred {
    std::string peer;
    msg::Message m;
  };
  struct Held {  // a committed round waiting for its flush
    uint64_t seq = 0;
    std::vector<Deferred> replies;
    ResultWriter::Batch files;
  };
  struct Retry {  // result files that could not be written; the output is read again from the store
    uint64_t job_id = 0;
    SteadyTime due{};
    Millis backoff{};
    bool in_flight = false;  // handed to the writer again, outcome not known yet
  };
  struct Activity {  // what the aggregated info line reports
    uint64_t queued = 0, finished = 0;
    std::map<std::string, uint64_t> by_status;
  };

  // m is taken apart (a result's output is moved on, not copied).
  void handle(std::string_view peer, int fd, msg::Message& m, std::string_view user_id);
  void on_register(std::string_view peer, int fd, const msg::Register& r, std::string_view user_id);
  void on_result(Runner& r, msg::Result& res);
  void on_output(Runner& r, const msg::Output& o);
  void on_watch(std::string_view peer, const msg::WatchRequest& q);
  void on_commit(std::string_view peer, const msg::Commit& c);
  void on_status(std::string_view peer, const msg::StatusRequest& q);
  void on_results(std::string_view peer, const msg::ResultsRequest& q);
  void on_cancel(std::string_view peer, const msg::CancelRequest& q);
  void on_retry(std::string_view peer, const msg::RetryRequest& q);
  void on_prune(std::string_view peer, const msg::PruneRequest& q);
  bool refuse_if_full(std::string_view peer, uint64_t request_id);
  void files_done(ResultWriter::Batch& b);
  void hold_or_send(std::vector<Deferred> out, ResultWriter::Batch files);
  void release(std::vector<Deferred>& replies, ResultWriter::Batch& files);
  void retry_files();
  void prune_periodically();
  void log_activity(bool force);

  void reject(msg::DecodeError why, std::string_view peer, const std::string& detail,
              uint64_t request_id);
  void reject_reason(const std::string& reason, std::string_view peer, const std::string& detail);
  bool allowed(std::string_view peer, std::string_view user_id, const msg::Peeked& p);
  void runner_lost(const std::string& name, const char* why);
  void requeue(uint64_t job_id, const char* why);
  void unorphan(uint64_t job_id, Active& a);  // a is no longer waiting for its runner
  void finish(uint64_t job_id, msg::JobStatus st, int32_t exit_code, int64_t started,
              int64_t finished, bool truncated, std::string output);
  uint64_t enqueue(const std::string& commit, const std::string& branch);
  void dispatch();
  Runner* pick_runner(const Active& a);
  bool setup_failed(Runner& r, const msg::Result& res);
  bool store_ok(bool ok, const std::string& err);
  void send_now(std::string_view peer, const msg::Message& m);
  void send_later(std::string_view peer, msg::Message m);
  // True (and peer answered ERROR busy) when peer may not get another output-carrying reply now.
  bool output_busy(std::string_view peer, uint64_t request_id);
  Runner* session(std::string_view peer);
  bool reload();

  Clock& clock_;
  Store& store_;
  Outbox& out_;
  Config cfg_;
  Syncer* syncer_;
  Millis hb_;
  SteadyTime started_;
  std::map<std::string, Runner> runners_;           // by name
  std::unordered_map<std::string, std::string> peers_;  // routing id -> runner name
  std::unordered_map<uint64_t, Active> active_;     // queued + running jobs
  // Kept beside active_ so that STATUS, REGISTER and tick cost O(runners + running jobs), never
  // O(queue): the running jobs (ordered, STATUS lists the lowest ids), and the running jobs
  // found in the store after a restart whose runner has not registered yet, by runner name.
  std::set<uint64_t> running_;
  std::unordered_map<std::string, std::set<uint64_t>> orphans_;
  std::unordered_map<std::string, uint64_t> active_by_commit_;
  std::deque<uint64_t> queue_;
  std::unordered_map<uint64_t, Live> live_;         // running jobs' output, by job id
  std::optional<Authorized> authorized_;            // key names allowed and their roles (CURVE)
  std::vector<Deferred> deferred_;
  std::set<std::string, std::less<>> output_pending_;  // peers with an output reply in deferred_
  std::vector<std::pair<msg::JobSummary, std::string>> files_;  // result files to write
  std::vector<std::string> removals_;  // commits whose files go after the commit (pruned)
  std::unordered_map<std::string, Retry> retries_;  // by commit: its newest failed write
  std::vector<std::pair<std::string, uint64_t>> deferred_errors_;  // (peer, request) on failure
  std::unique_ptr<ResultWriter> writer_;
  size_t writer_backlog_ = 0;
  size_t writer_backlog_bytes_ = 0;
  size_t files_bytes_ = 0;  // output bytes in files_
  std::deque<Held> held_;         // oldest first
  size_t held_bytes_ = 0;         // output bytes in held_ rounds' files
  uint64_t committed_seq_ = 0;    // the newest round that committed
  uint64_t durable_seq_ = 0;      // the newest round the syncer reported on the disk
  bool sync_failed_ = false;
  bool tx_failed_ = false;
  std::string tx_error_;
  std::map<std::string, uint64_t> counters_;
  LogLimiter bad_log_;
  LogLimiter file_log_;
  LogLimiter full_log_;
  Activity activity_;
  SteadyTime activity_since_;
  SteadyTime next_prune_;
  bool pruning_ = false;  // a periodic pass is under way (one batch per tick)
  size_t rr_ = 0;  // round-robin start for spreading work
};

}  // namespace simpleci::dispatcher
