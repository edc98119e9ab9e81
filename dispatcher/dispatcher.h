// The dispatcher's logic, free of sockets: runner sessions, the job queue, heartbeats, requeue,
// results and client requests, as PROTOCOL.md describes them.
//
// The server loop (server.h) feeds it decoded-or-not frames (on_message), connection losses
// (on_disconnect) and the passage of time (tick), then calls flush(). Everything that changes
// the store between two flushes is one transaction of the JobStore (a round); its COMMIT is not
// flushed to the disk on the loop thread: a Syncer does that on its own (walsync.h), and the
// replies that promise durability wait for it, so a power cut never leaves a peer believing
// something the store does not hold. The loop keeps reading and committing while earlier rounds
// wait for their flush. Time comes from a Clock, so tests drive heartbeat expiry with a
// FakeClock. Single-threaded.
//
// The Dispatcher wires six parts, each answering one question, and handles the messages:
//   JobQueue (job_queue.h)            which jobs wait, in what order, and which run where;
//   RunnerRegistry (runner_registry.h) which runners have a session and what they hold, and
//                                      which free runner gets the next job;
//   LiveOutput (live_output.h)        what a running job printed lately (for WATCH);
//   Subscribers (subscribers.h)       who follows the event feed, and who is dropped from it;
//   Round (round.h)                   which replies leave at the COMMIT and which wait for the
//                                      WAL flush, round after round;
//   PendingFiles (pending_files.h)    which result files are still to be written, removed or
//                                      retried (with the ResultWriter thread, result_writer.h).
// Its own code is in dispatcher.cpp (input, authorisation, flush, time), runner_messages.cpp
// (REGISTER, RESULT, OUTPUT, lost runners), jobs.cpp (state changes of jobs: queue, dispatch,
// requeue, finish, prune), requests.cpp (COMMIT and the client requests), notify.cpp
// (NOTIFY wakes the observers of an ObserverSet, observers.h) and feed.cpp (SUBSCRIBE and the
// events the state changes publish).
#pragma once

#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/logging.h"
#include "dispatcher/config.h"
#include "dispatcher/job_queue.h"
#include "dispatcher/job_store.h"
#include "dispatcher/live_output.h"
#include "dispatcher/metrics.h"
#include "dispatcher/observers.h"
#include "dispatcher/pending_files.h"
#include "dispatcher/round.h"
#include "dispatcher/runner_registry.h"
#include "dispatcher/subscribers.h"
#include "dispatcher/walsync.h"
#include "messages/codec.h"
#include "net/roles.h"

namespace simpleci::dispatcher {

class Dispatcher {
 public:
  // Without a syncer every commit counts as durable at once (an in-memory or test store).
  Dispatcher(Clock& clock, JobStore& store, Outbox& out, Config cfg, Syncer* syncer = nullptr);

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
  // the rest until on_synced() reports the round durable. False when the commit failed: then the
  // in-memory state is reloaded from the store, the round's ACCEPTED and OK become ERROR
  // storage_failure, its RESULT_ACK and JOB are not sent (the runner re-sends; the job stays
  // queued), and its result files are not written.
  bool flush();

  // Readable when the syncer has news: then call on_synced(). -1 without a syncer.
  int syncer_fd() const { return round_.syncer_fd(); }
  // Sends the replies (and writes the files) of the rounds the syncer reports durable. False when
  // a flush failed: the error is logged once, the held replies are dropped unsent, and the
  // dispatcher must stop (sync_failed() stays true).
  bool on_synced() { return round_.on_synced(); }
  bool sync_failed() const { return round_.sync_failed(); }
  // Rounds committed and waiting for their flush.
  size_t unsynced_rounds() const { return round_.held_rounds(); }

  // With async_files: readable when result files were written; then call on_written() to learn
  // which writes failed (they are retried from tick()). -1 without async_files.
  int writer_fd() const { return files_.writer_fd(); }
  void on_written() { files_.on_written(); }
  // Shutdown: waits until the held rounds are durable (their replies sent, unless a flush
  // failed) and the writer has handled every result file handed to it.
  void finish_writes();
  // Waits until the writer has handled every result file handed to it (none: returns at once).
  void wait_files() { files_.finish(); }
  // Result files whose write failed and waits to be retried (from tick(), with backoff).
  size_t files_to_retry() const { return files_.to_retry(); }
  // Result files handed to the writer and not yet written: the loop stops reading new
  // messages while this is large, so a slow disk cannot make memory grow without bound.
  size_t writer_backlog() const { return files_.writer_backlog(); }
  // Output bytes of results whose files are not written yet (in the writer, waiting for their
  // round's flush or for this round's commit): the loop also stops reading while this is large,
  // since each result can hold 16 MiB.
  size_t unwritten_bytes() const {
    return files_.writer_bytes() + round_.held_bytes() + files_.round_bytes();
  }
  // Output bytes stored in this round's transaction: the loop ends a round (and commits) past a
  // bound, so one transaction (and the flush that follows it) stays small.
  size_t round_bytes() const { return files_.round_bytes(); }

  // With CURVE: the names of the keys allowed now and their roles (after the authorised-keys
  // folder was read again). From then on a message under any other key name, or one its key's
  // role does not allow (net/roles.h), is refused: ERROR unauthorized with the request id
  // it carried, counted as rejected.unauthorized. Runners whose key is gone or is no longer a
  // runner's are ended at once.
  using Authorized = std::map<std::string, Role, std::less<>>;
  void set_authorized(Authorized keys);

  // Every counter by name, the first `max` of them (STATUS_REPLY holds kMaxCounters).
  std::vector<msg::Counter> counters(size_t max = msg::kMaxCounters) const;
  uint64_t counter(const std::string& name) const;
  size_t queue_length() const { return jobs_.queued(); }
  size_t runner_count() const { return runners_.size(); }
  size_t running_count() const { return jobs_.running().size(); }
  size_t subscriber_count() const { return feed_.size(); }

 private:
  struct Activity {  // what the aggregated info line reports
    uint64_t queued = 0, finished = 0;
    std::map<std::string, uint64_t> by_status;
  };
  // How a job ends (finish()).
  struct Ending {
    msg::JobStatus status = msg::JobStatus::kError;
    int32_t exit_code = -1;
    int64_t started_ms = 0, finished_ms = 0;
    bool truncated = false;
    std::string output;
  };

  // dispatcher.cpp: input, authorisation, bad input, flush, time.
  // m is taken apart (a result's output is moved on, not copied).
  void handle(std::string_view peer, int fd, msg::Message& m, std::string_view user_id);
  Runner* need_session(Runner* r, std::string_view peer, const msg::Message& m);
  void unexpected(std::string_view peer, const msg::Message& m);
  bool allowed(std::string_view peer, std::string_view user_id, const msg::Peeked& p);
  void reject(msg::DecodeError why, std::string_view peer, const std::string& detail,
              uint64_t request_id);
  void reject_reason(const std::string& reason, std::string_view peer, const std::string& detail);
  bool commit_round(std::string* err, bool* wrote);
  bool reload();
  void send_later(std::string_view peer, msg::Message m) { round_.send_later(peer, std::move(m)); }
  void log_activity();

  // runner_messages.cpp: runner sessions.
  void on_register(std::string_view peer, int fd, const msg::Register& r, std::string_view user_id);
  void claim(Runner& r, const std::set<uint64_t>& previous, const std::set<uint64_t>& held);
  void on_result(Runner& r, msg::Result& res);
  bool setup_failed(Runner& r, const msg::Result& res);
  void on_output(Runner& r, const msg::Output& o);
  void runner_lost(const std::string& name, const char* why);
  void heartbeats();

  // jobs.cpp: state changes of jobs, each written to this round's transaction first.
  bool store_ok(bool ok, const std::string& err);
  // A new queued job from s's commit, branch, repo, job_name and labels; 0 when the store failed.
  uint64_t enqueue(msg::JobSummary s, uint32_t timeout_s = 0);
  // The declared repository of this name (nullptr: none; the unnamed one "" is never declared).
  const msg::RepoInfo* repo_info(const std::string& name) const;
  // The repositories as WELCOME and REPOS carry them (URLs only with cfg_.send_urls).
  std::vector<msg::RepoInfo> repos_for_peers() const;
  // Why a queued job cannot start on any connected runner ("" when one could take it).
  std::string waiting_reason(const msg::JobSummary& s) const;
  // The first queued jobs, with their waiting reasons, of every repository or (by_repo) one.
  std::vector<msg::JobSummary> queued_jobs(bool by_repo, const std::string& repo) const;
  // Jobs of repositories no longer declared end as error (at start, after recover()).
  void end_undeclared();
  void requeue(uint64_t job_id, const char* why);
  void finish(uint64_t job_id, Ending e);
  void dispatch();
  void sweep_running();
  void prune_periodically();

  // requests.cpp: COMMIT and the client requests.
  void on_commit(std::string_view peer, const msg::Commit& c);
  bool refuse_if_full(std::string_view peer, uint64_t request_id);
  void on_status(std::string_view peer, const msg::StatusRequest& q);
  void on_results(std::string_view peer, const msg::ResultsRequest& q);
  void on_cancel(std::string_view peer, const msg::CancelRequest& q);
  void on_retry(std::string_view peer, const msg::RetryRequest& q);
  void on_prune(std::string_view peer, const msg::PruneRequest& q);
  void on_watch(std::string_view peer, const msg::WatchRequest& q);
  // notify.cpp: observers and the pushes that wake them.
  void on_observer_hello(std::string_view peer, const msg::ObserverHello& h);
  void on_notify(std::string_view peer, const msg::Notify& n);
  // feed.cpp: the event feed (SUBSCRIBE, UNSUBSCRIBE, and the events of state changes). The
  // publish_* hooks are called where the state changed and cost nothing without subscribers.
  void on_subscribe(std::string_view peer, const msg::Subscribe& s);
  void on_unsubscribe(std::string_view peer, const msg::Unsubscribe& u);
  // An event about an active job, as it is now (or as `s` says); `released_by`: the runner that
  // just gave the job up, whose new state follows as runner_changed.
  void publish_job(msg::EventKind kind, uint64_t job_id, const std::string& released_by = {});
  void publish_job(msg::EventKind kind, const msg::JobSummary& s, const std::string& released_by = {});
  // An event about a runner with a session (none without one).
  void publish_runner(msg::EventKind kind, const std::string& name);
  // A chunk of a job's output, to the subscribers that follow the job.
  void publish_output(const msg::Output& o);
  msg::Event event(msg::EventKind kind) const;
  // A new event (numbered here), or a keepalive (seq as is): to every subscriber with room.
  void publish(msg::Event e);
  void queue_event(msg::Event e);
  // Those f drops: one EVENT dropped each, and nothing more of this round.
  void drop_subscribers(const Subscribers::Fanout& f);
  // At the round's end: each subscriber's events of the round in one message (EVENTS, or EVENT
  // when there is one), encoded once for all who get the same ones.
  void send_round_events();
  msg::Snapshot snapshot(uint64_t request_id) const;
  // From tick(): keepalives, and pauses that ended.
  void feed_tick();
  // After the round's messages were handed over: budgets counted by the transport from now on,
  // and subscribers whose feed messages could not be sent are forgotten (feed.gone).
  void feed_sent();
  // metrics.cpp: METRICS_REQUEST and JOBS_REQUEST.
  void on_metrics(std::string_view peer, const msg::MetricsRequest& q);
  void on_jobs(std::string_view peer, const msg::JobsRequest& q);

  // A runner as STATUS_REPLY and the feed show it; every runner (up to a list's length); the
  // running jobs with the lowest ids (as many as a list holds).
  msg::RunnerInfo runner_info(const Runner& r) const;
  std::vector<msg::RunnerInfo> runner_infos() const;
  std::vector<msg::JobSummary> running_jobs() const;
  // A job that is not active, read from the store: false (peer answered ERROR not_found, or
  // storage_failure when the store cannot be read) when there is none to tell about.
  bool read_inactive(std::string_view peer, uint64_t request_id, uint64_t job_id, JobRow* row);
  // Answers a request the store could not serve with ERROR storage_failure; logged and counted.
  void storage_failure(std::string_view peer, uint64_t request_id, const std::string& err);
  // True (and peer answered ERROR busy) when peer may not get another output-carrying reply now.
  bool output_busy(std::string_view peer, uint64_t request_id);

  Clock& clock_;
  JobStore& store_;
  Outbox& out_;
  const Config cfg_;
  const Millis hb_;
  Counters counters_;
  RunnerRegistry runners_;
  JobQueue jobs_;
  LiveOutput live_;
  ObserverSet observers_;
  PendingFiles files_;
  Round round_;
  Subscribers feed_;
  SteadyTime feed_ticked_{};  // the previous feed_tick()
  struct RoundEvents {
    std::vector<msg::Event> events;                                // in seq order
    std::map<std::string, std::vector<uint32_t>, std::less<>> to;  // peer -> its events' indices
  };
  RoundEvents round_events_;  // this round's, sent by send_round_events()
  std::optional<Authorized> authorized_;  // key names allowed and their roles (CURVE)
  bool tx_failed_ = false;  // a write of this round failed: its commit is refused
  std::string tx_error_;
  LogLimiter bad_log_;
  LogLimiter full_log_;
  LogLimiter store_log_;
  LogLimiter feed_log_;
  Activity activity_;
  const int64_t started_wall_ms_;
  Histogram duration_hist_;  // started -> finished, of final jobs that ran
  Histogram wait_hist_;      // queued -> first start
  SteadyTime activity_since_;
  SteadyTime next_prune_;
  bool pruning_ = false;  // a periodic pass is under way (one batch per tick)
};

}  // namespace simpleci::dispatcher
