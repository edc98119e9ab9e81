// The simpleCI wire protocol, version 1: every message type and its fields.
//
// messages/PROTOCOL.md is the normative description (frame layout, field order, limits, what a
// receiver does with a bad frame). This header is the C++ view of the same contract. Numeric
// values of MessageType, JobStatus and ErrorCode go on the wire: never renumber them, only add.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "messages/limits.h"

namespace simpleci::msg {

// Bumped only for incompatible changes. Carried in the header frame of every message.
inline constexpr uint8_t kProtocolVersion = 1;

// Wire values: never renumber.
enum class MessageType : uint8_t {
  kRegister = 1,       // runner -> dispatcher
  kWelcome = 2,        // dispatcher -> runner
  kHeartbeat = 3,      // both ways
  kJob = 4,            // dispatcher -> runner
  kOutput = 5,         // runner -> dispatcher
  kResult = 6,         // runner -> dispatcher
  kResultAck = 7,      // dispatcher -> runner
  kReregister = 8,     // dispatcher -> any peer it does not know
  kCancelJob = 9,      // dispatcher -> runner
  kCommit = 10,        // observer / client -> dispatcher
  kAccepted = 11,      // dispatcher -> observer / client
  kStatusRequest = 12, // client -> dispatcher
  kStatusReply = 13,   // dispatcher -> client
  kResultsRequest = 14,
  kResultsReply = 15,
  kCancelRequest = 16,
  kRetryRequest = 17,
  kOk = 18,
  kError = 19,
  kDrain = 20,         // runner -> dispatcher: finishing current jobs, send no more
  kWatchRequest = 21,  // client -> dispatcher: a job's live output from an offset
  kWatchReply = 22,    // dispatcher -> client
  kPruneRequest = 23,  // client -> dispatcher: drop old jobs' output and files (admin)
};
inline constexpr uint8_t kMinMessageType = 1;
inline constexpr uint8_t kMaxMessageType = 23;

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
  kUnauthorized = 6,     // reserved for CURVE identity mismatches
  kQueueFull = 7,        // COMMIT / RETRY refused: --max-queued jobs are queued (retry later)
  kBusy = 8,             // too many unread replies (or an output reply unread): read, then retry
};
inline constexpr uint8_t kMaxErrorCode = 8;
// The text of ERROR busy.
inline constexpr const char* kBusyText = "too many unread replies; read them and retry";

std::string_view to_string(MessageType t);
std::string_view to_string(JobStatus s);  // "queued", "running", "passed", ...
std::string_view to_string(ErrorCode c);
std::optional<JobStatus> job_status_from_string(std::string_view s);
bool is_final(JobStatus s);  // passed, failed, timeout, cancelled, error

// All times on the wire are milliseconds since the Unix epoch (UTC); durations are milliseconds.

struct Register {
  std::string name;                // kMaxNameLen, safe-name characters (see is_safe_name)
  uint32_t capacity = 1;           // 1..256 jobs at once
  std::vector<uint64_t> held_jobs; // jobs this runner still runs or holds an unacked result for
  bool operator==(const Register&) const = default;
};

struct Welcome {
  uint32_t heartbeat_ms = 1000;  // interval both sides use; silence for 3 intervals = dead
  bool operator==(const Welcome&) const = default;
};

struct Heartbeat {
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
  bool operator==(const Job&) const = default;
};

struct Output {
  uint64_t job_id = 0;
  uint32_t attempt = 1;
  uint64_t offset = 0;  // byte offset of this chunk in the job's output stream
  std::string data;     // raw bytes (msgpack bin), at most kMaxChunkBytes
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
  bool operator==(const Result&) const = default;
};

struct ResultAck {
  uint64_t job_id = 0;
  uint32_t attempt = 1;
  bool operator==(const ResultAck&) const = default;
};

struct Reregister {
  bool operator==(const Reregister&) const = default;
};

struct CancelJob {
  uint64_t job_id = 0;
  uint32_t attempt = 1;
  bool operator==(const CancelJob&) const = default;
};

// Requests from observers and clients carry a request_id chosen by the sender; the reply
// (ACCEPTED, *_REPLY, OK or ERROR) echoes it so a sender can pipeline requests.
struct Commit {
  uint64_t request_id = 0;
  std::string commit;
  std::string branch;
  bool force = false;  // true: test again even if the commit already has a finished job
  bool operator==(const Commit&) const = default;
};

struct Accepted {
  uint64_t request_id = 0;
  uint64_t job_id = 0;
  bool duplicate = false;  // the commit already had a job; job_id names it
  bool operator==(const Accepted&) const = default;
};

struct StatusRequest {
  uint64_t request_id = 0;
  bool operator==(const StatusRequest&) const = default;
};

struct RunnerInfo {
  std::string name;
  std::string state;  // "idle", "busy", "draining"
  uint32_t capacity = 1;
  std::vector<uint64_t> jobs;
  int64_t last_seen_ms = 0;
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
  bool operator==(const JobSummary&) const = default;
};

struct Counter {
  std::string name;
  uint64_t value = 0;
  bool operator==(const Counter&) const = default;
};

struct StatusReply {
  uint64_t request_id = 0;
  std::vector<RunnerInfo> runners;
  uint64_t queue_length = 0;
  std::vector<JobSummary> running;
  std::vector<Counter> counters;  // rejected-message counts by reason, and other totals
  bool operator==(const StatusReply&) const = default;
};

struct ResultsRequest {
  uint64_t request_id = 0;
  std::string commit;  // empty: most recent jobs; else that commit's jobs (newest first)
  uint32_t limit = 20; // 1..kMaxListLen
  bool with_output = false;  // include the newest job's output (only with a commit)
  bool operator==(const ResultsRequest&) const = default;
};

struct ResultsReply {
  uint64_t request_id = 0;
  std::vector<JobSummary> jobs;
  std::string output;  // output of jobs[0] when asked for and finished, else empty
  bool operator==(const ResultsReply&) const = default;
};

struct CancelRequest {
  uint64_t request_id = 0;
  uint64_t job_id = 0;
  bool operator==(const CancelRequest&) const = default;
};

struct RetryRequest {
  uint64_t request_id = 0;
  uint64_t job_id = 0;
  bool operator==(const RetryRequest&) const = default;
};

struct Ok {
  uint64_t request_id = 0;
  uint64_t job_id = 0;
  std::string text;
  bool operator==(const Ok&) const = default;
};

struct Error {
  uint64_t request_id = 0;  // 0 when the failing message had none (or could not be decoded)
  ErrorCode code = ErrorCode::kBadRequest;
  std::string text;
  bool operator==(const Error&) const = default;
};

struct Drain {
  bool operator==(const Drain&) const = default;
};

// Asks for a job's output from byte `offset` of attempt `attempt` (0: whichever is current).
struct WatchRequest {
  uint64_t request_id = 0;
  uint64_t job_id = 0;
  uint32_t attempt = 0;
  uint64_t offset = 0;
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
  bool operator==(const WatchReply&) const = default;
};

// Drops the stored output and the result files of final jobs that finished more than
// older_than_days ago (their rows stay, as history). Answered with OK whose job_id is the number
// of jobs pruned; one request prunes at most kMaxPrunePerRequest jobs (ask again while a reply
// reaches it), so a large history never stalls the dispatcher for long.
struct PruneRequest {
  uint64_t request_id = 0;
  uint32_t older_than_days = 30;  // 1..kMaxPruneDays
  bool operator==(const PruneRequest&) const = default;
};

// Order matches nothing on the wire; use type_of() for the wire type.
using Message = std::variant<Register, Welcome, Heartbeat, Job, Output, Result, ResultAck,
                             Reregister, CancelJob, Commit, Accepted, StatusRequest, StatusReply,
                             ResultsRequest, ResultsReply, CancelRequest, RetryRequest, Ok, Error,
                             Drain, WatchRequest, WatchReply, PruneRequest>;

MessageType type_of(const Message& m);

}  // namespace simpleci::msg
