// The body of every message: its struct with its fields in wire order, the records they hold,
// and the wire enumerations they use (JobStatus, ErrorCode). Include messages.h, which adds the
// table of message types (wire numbers, senders, replies) and the Message variant.
//
// Numeric values of JobStatus and ErrorCode go on the wire: never renumber them, only add.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "messages/limits.h"

namespace simpleci::msg {

// RESULT exit_code of an `error` whose cause is the runner, not the commit (its fetch, clone or
// checkout failed, or the test could not be started): another runner may well succeed, so the
// dispatcher queues the job again rather than ending it. Test processes never report negative
// exit codes (a signal is 128 + its number).
inline constexpr int32_t kExitSetupFailed = -2;

// Wire values: never renumber.
enum class JobStatus : uint8_t {
  kQueued = 0,
  kRunning = 1,
  kPassed = 2,
  kFailed = 3,
  kTimeout = 4,
  kCancelled = 5,
  kError = 6,
};
inline constexpr uint8_t kMaxJobStatus = 6;

// Wire values: never renumber.
enum class ErrorCode : uint8_t {
  kBadRequest = 1,       // a field failed validation
  kVersionMismatch = 2,  // header frame carried another protocol version
  kStorageFailure = 3,   // dispatcher could not commit to its store (retry later)
  kNotFound = 4,         // no such job / commit
  kInvalidState = 5,     // e.g. cancel of a finished job
  kUnauthorized = 6,     // CURVE: the key's role may not send it, the key is no longer listed,
                         // or a REGISTER names another runner than its key
  kQueueFull = 7,        // COMMIT / RETRY refused: --max-queued jobs are queued (retry later)
  kBusy = 8,             // too many unread replies (or an output reply unread): read, then retry
};
inline constexpr uint8_t kMaxErrorCode = 8;
// The text of ERROR busy.
inline constexpr const char* kBusyText = "too many unread replies; read them and retry";

std::string_view to_string(JobStatus s);  // "queued", "running", "passed", ...
std::string_view to_string(ErrorCode c);
std::optional<JobStatus> job_status_from_string(std::string_view s);
bool is_final(JobStatus s);  // passed, failed, timeout, cancelled, error

// All times on the wire are milliseconds since the Unix epoch (UTC); durations are milliseconds.
//
// Each struct lists its wire fields once, in wire order, in fields(v); the codec runs that list
// to encode (codec.cpp), to decode and check (reader.h) and to check a message built in memory
// (validate(), check.cpp), so the three never disagree about field order or limits. The calls name PROTOCOL.md's field types: v.u64 / v.u32 (name, field, lo, hi),
// v.i32, v.time (0..kMaxTimeMs), v.boolean, v.name (is_safe_name), v.commit (is_commit_id; true:
// or empty), v.branch (is_valid_branch), v.text (max bytes, no NUL), v.bytes (max bytes, msgpack
// bin), v.status (true: final only), v.error_code, v.ids (job ids >= 1) and v.list (records,
// at most max).

struct Register {
  std::string name;                // kMaxNameLen, safe-name characters (see is_safe_name)
  uint32_t capacity = 1;           // 1..256 jobs at once
  std::vector<uint64_t> held_jobs; // jobs this runner still runs or holds an unacked result for
  std::vector<std::string> labels{};  // at most kMaxLabels, its automatic ones included
  bool serves_unnamed = true;      // has a clone of the unnamed repository (the original flow)
  bool serves_all = false;         // --cache: serves every declared repository
  template <class V> void fields(V& v) {
    v.name("name", name);
    v.u32("capacity", capacity, 1, kMaxCapacity);
    v.ids("held_jobs", held_jobs);
    v.names("labels", labels, kMaxLabels);
    v.boolean("serves_unnamed", serves_unnamed);
    v.boolean("serves_all", serves_all);
  }
  bool operator==(const Register&) const = default;
};

// A repository the dispatcher declares (--repo NAME=URL). The url is sent only where the peer
// has authenticated the dispatcher (CURVE); elsewhere it is "" (docs/MULTI.md, the trust rule).
struct RepoInfo {
  std::string name;
  std::string url;
  uint32_t limit = 0;  // jobs of it running at once; 0: no limit
  template <class V> void fields(V& v) {
    v.name("name", name);
    v.text("url", url, kMaxTextLen);
    v.u32("limit", limit, 0, kMaxRepoLimit);
  }
  bool operator==(const RepoInfo&) const = default;
};

struct Welcome {
  uint32_t heartbeat_ms = 1000;  // interval both sides use; silence for 3 intervals = dead
  std::vector<RepoInfo> repos{};  // the declared repositories
  template <class V> void fields(V& v) {
    v.u32("heartbeat_ms", heartbeat_ms, kMinHeartbeatMs, kMaxHeartbeatMs);
    v.list("repos", repos, kMaxRepos);
  }
  bool operator==(const Welcome&) const = default;
};

struct Heartbeat {
  template <class V> void fields(V&) {}
  bool operator==(const Heartbeat&) const = default;
};

struct Job {
  uint64_t job_id = 0;
  uint32_t attempt = 1;         // 1 for the first run
  std::string commit;           // 40 or 64 lowercase hex
  std::string branch;           // may be empty
  std::string test_command;     // used when the commit has no executable .simpleci/test
  uint32_t timeout_s = 600;     // 1..604800
  uint64_t output_cap = kMaxOutputCap;  // 1024..kMaxOutputCap bytes
  std::string repo{};           // "": the unnamed repository
  std::string job_name{};       // "": the commit's one job (.simpleci/test); else .simpleci/jobs/NAME
  std::string url{};            // the repository's URL, "" unless the dispatcher is authenticated
  template <class V> void fields(V& v) {
    v.u64("job_id", job_id, 1);
    v.u32("attempt", attempt, 1, kMaxAttempt);
    v.commit("commit", commit, false);
    v.branch("branch", branch);
    v.text("test_command", test_command, kMaxCommandLen);
    v.u32("timeout_s", timeout_s, 1, kMaxTimeoutS);
    v.u64("output_cap", output_cap, 1024, kMaxOutputCap);
    v.repo("repo", repo);
    v.repo("job_name", job_name);
    v.text("url", url, kMaxTextLen);
  }
  bool operator==(const Job&) const = default;
};

struct Output {
  uint64_t job_id = 0;
  uint32_t attempt = 1;
  uint64_t offset = 0;  // byte offset of this chunk in the job's output stream
  std::string data;     // raw bytes (msgpack bin), at most kMaxChunkBytes
  template <class V> void fields(V& v) {
    v.u64("job_id", job_id, 1);
    v.u32("attempt", attempt, 1, kMaxAttempt);
    v.u64("offset", offset, 0, kMaxOffset);
    v.bytes("data", data, kMaxChunkBytes);
  }
  bool operator==(const Output&) const = default;
};

struct Result {
  uint64_t job_id = 0;
  uint32_t attempt = 1;
  JobStatus status = JobStatus::kPassed;  // must be final
  int32_t exit_code = 0;                  // -1 when there is none (timeout, error before run)
  int64_t started_at_ms = 0;
  int64_t finished_at_ms = 0;
  bool truncated = false;
  std::string output;  // complete captured output (head + marker + tail when truncated)
  template <class V> void fields(V& v) {
    v.u64("job_id", job_id, 1);
    v.u32("attempt", attempt, 1, kMaxAttempt);
    v.status("status", status, true);
    v.i32("exit_code", exit_code);
    v.time("started_at_ms", started_at_ms);
    v.time("finished_at_ms", finished_at_ms);
    v.boolean("truncated", truncated);
    v.bytes("output", output, kMaxOutputCap);
  }
  bool operator==(const Result&) const = default;
};

struct ResultAck {
  uint64_t job_id = 0;
  uint32_t attempt = 1;
  template <class V> void fields(V& v) {
    v.u64("job_id", job_id, 1);
    v.u32("attempt", attempt, 1, kMaxAttempt);
  }
  bool operator==(const ResultAck&) const = default;
};

struct Reregister {
  template <class V> void fields(V&) {}
  bool operator==(const Reregister&) const = default;
};

struct CancelJob {
  uint64_t job_id = 0;
  uint32_t attempt = 1;
  template <class V> void fields(V& v) {
    v.u64("job_id", job_id, 1);
    v.u32("attempt", attempt, 1, kMaxAttempt);
  }
  bool operator==(const CancelJob&) const = default;
};

// Requests from observers and clients carry a request_id chosen by the sender; the reply
// (ACCEPTED, *_REPLY, OK or ERROR) echoes it so a sender can pipeline requests.
// One job of a commit, as its .simpleci/jobs/NAME says (docs/MULTI.md "The settings line").
struct JobSpec {
  std::string name;
  std::vector<std::string> labels{};  // a runner must have every one
  uint32_t timeout_s = 0;             // 0: the dispatcher's default
  std::string problem{};              // not "": the settings line is wrong; the job ends as error
  template <class V> void fields(V& v) {
    v.name("name", name);
    v.names("labels", labels, kMaxJobLabels);
    v.u32("timeout_s", timeout_s, 0, kMaxTimeoutS);
    v.text("problem", problem, kMaxTextLen);
  }
  bool operator==(const JobSpec&) const = default;
};

struct Commit {
  uint64_t request_id = 0;
  std::string commit;
  std::string branch;
  bool force = false;  // true: test again even if the commit already has a finished job
  std::string repo{};           // "": the unnamed repository
  std::vector<JobSpec> jobs{};  // none: one unnamed job (the original flow)
  template <class V> void fields(V& v) {
    v.u64("request_id", request_id);
    v.commit("commit", commit, false);
    v.branch("branch", branch);
    v.boolean("force", force);
    v.repo("repo", repo);
    v.list("jobs", jobs, kMaxJobsPerCommit);
  }
  bool operator==(const Commit&) const = default;
};

struct Accepted {
  uint64_t request_id = 0;
  uint64_t job_id = 0;
  bool duplicate = false;  // the commit already had a job; job_id names it
  template <class V> void fields(V& v) {
    v.u64("request_id", request_id);
    v.u64("job_id", job_id, 1);
    v.boolean("duplicate", duplicate);
  }
  bool operator==(const Accepted&) const = default;
};

struct StatusRequest {
  uint64_t request_id = 0;
  bool by_repo = false;  // only the jobs of `repo` ("" being the unnamed repository)
  std::string repo{};
  template <class V> void fields(V& v) {
    v.u64("request_id", request_id);
    v.boolean("by_repo", by_repo);
    v.repo("repo", repo);
  }
  bool operator==(const StatusRequest&) const = default;
};

struct RunnerInfo {
  std::string name;
  std::string state;  // "idle", "busy", "draining", "paused" (after setup failures)
  uint32_t capacity = 1;
  std::vector<uint64_t> jobs;
  int64_t last_seen_ms = 0;
  template <class V> void fields(V& v) {
    v.name("name", name);
    v.text("state", state, 16);
    v.u32("capacity", capacity, 1, kMaxCapacity);
    v.ids("jobs", jobs);
    v.time("last_seen_ms", last_seen_ms);
  }
  bool operator==(const RunnerInfo&) const = default;
};

struct JobSummary {
  uint64_t job_id = 0;
  std::string commit;
  std::string branch;
  JobStatus status = JobStatus::kQueued;
  int32_t exit_code = -1;
  int64_t duration_ms = 0;
  std::string runner;
  uint32_t attempt = 0;
  int64_t created_at_ms = 0;
  int64_t started_at_ms = 0;
  int64_t finished_at_ms = 0;
  bool truncated = false;
  std::string repo{};                 // "": the unnamed repository
  std::string job_name{};             // "": the commit's one job
  std::vector<std::string> labels{};  // what the job asks of a runner
  std::string waiting{};              // queued and no connected runner can take it: why
  template <class V> void fields(V& v) {
    v.u64("job_id", job_id, 1);
    v.commit("commit", commit, false);
    v.branch("branch", branch);
    v.status("status", status, false);
    v.i32("exit_code", exit_code);
    v.time("duration_ms", duration_ms);
    v.text("runner", runner, kMaxNameLen);
    v.u32("attempt", attempt, 0, kMaxAttempt);
    v.time("created_at_ms", created_at_ms);
    v.time("started_at_ms", started_at_ms);
    v.time("finished_at_ms", finished_at_ms);
    v.boolean("truncated", truncated);
    v.repo("repo", repo);
    v.repo("job_name", job_name);
    v.names("labels", labels, kMaxJobLabels);
    v.text("waiting", waiting, kMaxWaitingLen);
  }
  bool operator==(const JobSummary&) const = default;
};

struct Counter {
  std::string name;
  uint64_t value = 0;
  template <class V> void fields(V& v) {
    v.text("name", name, kMaxNameLen);
    v.u64("value", value);
  }
  bool operator==(const Counter&) const = default;
};

struct StatusReply {
  uint64_t request_id = 0;
  std::vector<RunnerInfo> runners;
  uint64_t queue_length = 0;
  std::vector<JobSummary> running;
  std::vector<Counter> counters;  // rejected-message counts by reason, and other totals
  std::vector<JobSummary> queued{};  // the first kMaxListLen in the order they will start
  template <class V> void fields(V& v) {
    v.u64("request_id", request_id);
    v.list("runners", runners, kMaxListLen);
    v.u64("queue_length", queue_length);
    v.list("running", running, kMaxListLen);
    v.list("counters", counters, kMaxCounters);
    v.list("queued", queued, kMaxListLen);
  }
  bool operator==(const StatusReply&) const = default;
};

struct ResultsRequest {
  uint64_t request_id = 0;
  std::string commit;  // empty: most recent jobs; else that commit's jobs (newest first)
  uint32_t limit = 20; // 1..kMaxListLen
  bool with_output = false;  // include the newest job's output (only with a commit)
  bool by_repo = false;      // only the jobs of `repo` ("" being the unnamed repository)
  std::string repo{};
  template <class V> void fields(V& v) {
    v.u64("request_id", request_id);
    v.commit("commit", commit, true);
    v.u32("limit", limit, 1, kMaxListLen);
    v.boolean("with_output", with_output);
    v.boolean("by_repo", by_repo);
    v.repo("repo", repo);
  }
  bool operator==(const ResultsRequest&) const = default;
};

struct ResultsReply {
  uint64_t request_id = 0;
  std::vector<JobSummary> jobs;
  std::string output;  // output of jobs[0] when asked for and finished, else empty
  template <class V> void fields(V& v) {
    v.u64("request_id", request_id);
    v.list("jobs", jobs, kMaxListLen);
    v.bytes("output", output, kMaxOutputCap);
  }
  bool operator==(const ResultsReply&) const = default;
};

struct CancelRequest {
  uint64_t request_id = 0;
  uint64_t job_id = 0;
  template <class V> void fields(V& v) {
    v.u64("request_id", request_id);
    v.u64("job_id", job_id, 1);
  }
  bool operator==(const CancelRequest&) const = default;
};

struct RetryRequest {
  uint64_t request_id = 0;
  uint64_t job_id = 0;
  template <class V> void fields(V& v) {
    v.u64("request_id", request_id);
    v.u64("job_id", job_id, 1);
  }
  bool operator==(const RetryRequest&) const = default;
};

struct Ok {
  uint64_t request_id = 0;
  uint64_t job_id = 0;
  std::string text;
  template <class V> void fields(V& v) {
    v.u64("request_id", request_id);
    v.u64("job_id", job_id);
    v.text("text", text, kMaxTextLen);
  }
  bool operator==(const Ok&) const = default;
};

struct Error {
  uint64_t request_id = 0;  // 0 when the failing message had none (or could not be decoded)
  ErrorCode code = ErrorCode::kBadRequest;
  std::string text;
  template <class V> void fields(V& v) {
    v.u64("request_id", request_id);
    v.error_code("code", code);
    v.text("text", text, kMaxTextLen);
  }
  bool operator==(const Error&) const = default;
};

struct Drain {
  template <class V> void fields(V&) {}
  bool operator==(const Drain&) const = default;
};

// Asks for a job's output from byte `offset` of attempt `attempt` (0: whichever is current).
struct WatchRequest {
  uint64_t request_id = 0;
  uint64_t job_id = 0;
  uint32_t attempt = 0;
  uint64_t offset = 0;
  template <class V> void fields(V& v) {
    v.u64("request_id", request_id);
    v.u64("job_id", job_id, 1);
    v.u32("attempt", attempt, 0, kMaxAttempt);
    v.u64("offset", offset, 0, kMaxOffset);
  }
  bool operator==(const WatchRequest&) const = default;
};

// The job's state now and the output bytes from `offset` on. `offset` is larger than asked for
// when the bytes in between are no longer kept; `attempt` differs from the request's when the
// job was restarted (the bytes then start the new attempt's output). `complete`: the job is
// final and `data` reaches the end of its output.
struct WatchReply {
  uint64_t request_id = 0;
  uint64_t job_id = 0;
  uint32_t attempt = 0;
  JobStatus status = JobStatus::kQueued;
  int32_t exit_code = 0;
  int64_t duration_ms = 0;
  std::string runner;
  uint64_t offset = 0;
  std::string data;  // at most kMaxWatchBytes
  bool complete = false;
  template <class V> void fields(V& v) {
    v.u64("request_id", request_id);
    v.u64("job_id", job_id, 1);
    v.u32("attempt", attempt, 0, kMaxAttempt);
    v.status("status", status, false);
    v.i32("exit_code", exit_code);
    v.time("duration_ms", duration_ms);
    v.text("runner", runner, kMaxNameLen);
    v.u64("offset", offset, 0, kMaxOffset);
    v.bytes("data", data, kMaxWatchBytes);
    v.boolean("complete", complete);
  }
  bool operator==(const WatchReply&) const = default;
};

// Drops the stored output and the result files of final jobs that finished more than
// older_than_days ago (their rows stay, as history). Answered with OK whose job_id is the number
// of jobs pruned; one request prunes at most kMaxPrunePerRequest jobs (ask again while a reply
// reaches it), so a large history never stalls the dispatcher for long.
struct PruneRequest {
  uint64_t request_id = 0;
  uint32_t older_than_days = 30;  // 1..kMaxPruneDays
  template <class V> void fields(V& v) {
    v.u64("request_id", request_id);
    v.u32("older_than_days", older_than_days, 1, kMaxPruneDays);
  }
  bool operator==(const PruneRequest&) const = default;
};

// A branch name in a list (NOTIFY, WAKE).
struct BranchName {
  std::string name;
  template <class V> void fields(V& v) { v.branch("name", name); }
  bool operator==(const BranchName&) const = default;
};

// An observer's "I am here": sent on connecting and every kObserverHelloMs after, so the
// dispatcher knows whom to WAKE. No reply; the dispatcher forgets an observer silent for
// kObserverExpiryMs.
struct ObserverHello {
  bool serves_all = false;  // --cache: watches every declared repository (answered with REPOS)
  template <class V> void fields(V& v) { v.boolean("serves_all", serves_all); }
  bool operator==(const ObserverHello&) const = default;
};

// "These branches were just pushed" (a post-receive hook's `simpleci notify`): the dispatcher
// sends every observer it knows a WAKE with the same branches, and answers OK whose job_id is
// how many observers it woke. No branches: any branch may have moved.
struct Notify {
  uint64_t request_id = 0;
  std::vector<BranchName> branches;  // at most kMaxNotifyBranches
  template <class V> void fields(V& v) {
    v.u64("request_id", request_id);
    v.list("branches", branches, kMaxNotifyBranches);
  }
  bool operator==(const Notify&) const = default;
};

// Dispatcher -> observer: poll git now (a NOTIFY arrived). An observer that watches none of the
// branches (when some are named) may ignore it.
struct Wake {
  std::vector<BranchName> branches;  // at most kMaxNotifyBranches; none: any branch
  template <class V> void fields(V& v) { v.list("branches", branches, kMaxNotifyBranches); }
  bool operator==(const Wake&) const = default;
};

// ---- The event feed (PROTOCOL.md "Events") ----------------------------------------------------

// Wire values of EVENT's kind: never renumber.
enum class EventKind : uint8_t {
  kJobQueued = 1,      // jobs[0]: the new job (status queued, attempt 0)
  kJobStarted = 2,     // jobs[0]: running, with runner and attempt; runners[0]: that runner
  kJobFinished = 3,    // jobs[0]: final (passed, failed, timeout, cancelled, error)
  kJobRequeued = 4,    // jobs[0]: queued again (attempt is the one to come)
  kRunnerJoined = 5,   // runners[0]: a runner registered (or registered again)
  kRunnerLeft = 6,     // runners[0]: a runner's session ended (lost, or its key withdrawn)
  kRunnerChanged = 7,  // runners[0]: state (idle, busy, draining, paused) or jobs changed
  kKeepalive = 8,      // no job, no runner; seq is the newest event's (nothing was missed)
  kDropped = 9,        // the subscription ended (over its byte budget): SUBSCRIBE again
};
inline constexpr uint32_t kMaxEventKind = 9;
std::string_view to_string(EventKind k);  // "job_queued", ..., "dropped"

// Starts (or restarts) the feed for the sender: answered with SNAPSHOT, then EVENTs and
// JOB_OUTPUTs. Sent again by a subscriber, it replaces the set of jobs followed and brings a new
// SNAPSHOT (the events go on with the same feed and seq).
struct Subscribe {
  uint64_t request_id = 0;
  std::vector<uint64_t> follow;  // jobs whose output to forward (at most kMaxListLen)
  bool all_output = false;       // forward every running job's output
  template <class V> void fields(V& v) {
    v.u64("request_id", request_id);
    v.ids("follow", follow);
    v.boolean("all_output", all_output);
  }
  bool operator==(const Subscribe&) const = default;
};

// The state the events that follow build on: every event after this has seq > `seq`.
struct Snapshot {
  uint64_t request_id = 0;
  uint64_t feed = 1;  // chosen when the dispatcher starts; another value: it restarted
  uint64_t seq = 0;   // the newest event sent before this snapshot (0: none yet)
  std::vector<RunnerInfo> runners;
  uint64_t queue_length = 0;
  std::vector<JobSummary> queued;   // the first kMaxListLen jobs in the order they will start
  std::vector<JobSummary> running;  // the kMaxListLen lowest job ids
  template <class V> void fields(V& v) {
    v.u64("request_id", request_id);
    v.u64("feed", feed, 1);
    v.u64("seq", seq);
    v.list("runners", runners, kMaxListLen);
    v.u64("queue_length", queue_length);
    v.list("queued", queued, kMaxListLen);
    v.list("running", running, kMaxListLen);
  }
  bool operator==(const Snapshot&) const = default;
};

// Something happened. seq rises by one with every event of the feed (keepalive and dropped
// repeat the newest seq), so a subscriber that sees a gap knows it missed one.
struct Event {
  uint64_t feed = 1;
  uint64_t seq = 0;
  uint32_t kind = 0;  // EventKind, 1..kMaxEventKind
  int64_t at_ms = 0;
  std::vector<JobSummary> jobs;     // at most 1: the job the event is about
  std::vector<RunnerInfo> runners;  // at most 1: the runner the event is about
  uint64_t queue_length = 0;        // jobs queued after the event
  template <class V> void fields(V& v) {
    v.u64("feed", feed, 1);
    v.u64("seq", seq);
    v.u32("kind", kind, 1, kMaxEventKind);
    v.time("at_ms", at_ms);
    v.list("jobs", jobs, 1);
    v.list("runners", runners, 1);
    v.u64("queue_length", queue_length);
  }
  bool operator==(const Event&) const = default;
};

// Several EVENTs in one message: those one dispatcher round made for this subscriber, in seq
// order. Each means exactly what it would alone; one message per round instead of one per event
// is what keeps many subscribers cheap.
struct Events {
  std::vector<Event> events;  // 1..kMaxListLen
  template <class V> void fields(V& v) { v.list("events", events, kMaxListLen); }
  bool operator==(const Events&) const = default;
};

// A chunk of a followed job's live output, as its runner streamed it (OUTPUT), forwarded.
struct JobOutput {
  uint64_t feed = 1;
  uint64_t job_id = 0;
  uint32_t attempt = 1;
  uint64_t offset = 0;
  std::string data;  // at most kMaxChunkBytes
  template <class V> void fields(V& v) {
    v.u64("feed", feed, 1);
    v.u64("job_id", job_id, 1);
    v.u32("attempt", attempt, 1, kMaxAttempt);
    v.u64("offset", offset, 0, kMaxOffset);
    v.bytes("data", data, kMaxChunkBytes);
  }
  bool operator==(const JobOutput&) const = default;
};

// Ends the sender's subscription. Answered with OK.
struct Unsubscribe {
  uint64_t request_id = 0;
  template <class V> void fields(V& v) { v.u64("request_id", request_id); }
  bool operator==(const Unsubscribe&) const = default;
};

// The dispatcher's counters, gauges and histograms (for Prometheus, through simpleci-web).
struct MetricsRequest {
  uint64_t request_id = 0;
  template <class V> void fields(V& v) { v.u64("request_id", request_id); }
  bool operator==(const MetricsRequest&) const = default;
};

// Names as PROTOCOL.md "Metrics" lists them: the STATUS counters, "gauge.*" values now,
// "hist.<name>.le.<ms>" cumulative bucket counts plus "hist.<name>.count" and ".sum_ms".
struct MetricsReply {
  uint64_t request_id = 0;
  std::vector<Counter> metrics;  // at most kMaxMetrics
  template <class V> void fields(V& v) {
    v.u64("request_id", request_id);
    v.list("metrics", metrics, kMaxMetrics);
  }
  bool operator==(const MetricsReply&) const = default;
};

// Jobs newest first, filtered: answered with RESULTS_REPLY (no output).
struct JobsRequest {
  uint64_t request_id = 0;
  std::string branch;          // empty: every branch
  uint32_t statuses = 0;       // bit (1 << JobStatus) for each status wanted; 0: every status
  uint32_t limit = 20;         // 1..kMaxListLen
  uint64_t before_job_id = 0;  // only jobs with a lower id (paging); 0: from the newest
  bool by_repo = false;        // only the jobs of `repo` ("" being the unnamed repository)
  std::string repo{};
  template <class V> void fields(V& v) {
    v.u64("request_id", request_id);
    v.branch("branch", branch);
    v.u32("statuses", statuses, 0, (1u << (kMaxJobStatus + 1)) - 1);
    v.u32("limit", limit, 1, kMaxListLen);
    v.u64("before_job_id", before_job_id);
    v.boolean("by_repo", by_repo);
    v.repo("repo", repo);
  }
  bool operator==(const JobsRequest&) const = default;
};

// The declared repositories, to an observer whose OBSERVER_HELLO says serves_all (urls as in
// WELCOME).
struct Repos {
  std::vector<RepoInfo> repos;
  template <class V> void fields(V& v) { v.list("repos", repos, kMaxRepos); }
  bool operator==(const Repos&) const = default;
};

}  // namespace simpleci::msg
