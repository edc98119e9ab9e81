// Every limit of the wire and every default a component starts with, in one table.
//
// A receiver rejects anything past a wire limit; PROTOCOL.md lists the same numbers. Command-line
// ranges and the components' defaults come from here too, so a number is written once: change it
// here and in PROTOCOL.md / docs/CLI.md, nowhere else.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace simpleci::msg {

// --- Wire limits (a receiver rejects anything bigger). ---
inline constexpr size_t kMaxNameLen = 64;            // runner / observer names
inline constexpr size_t kMaxBranchLen = 255;         // branch names
inline constexpr size_t kMaxCommandLen = 4096;       // test command
// The test command of a commit without .simpleci/test, unless --test-command says otherwise
// (the dispatcher's, sent in JOB, and the runner's own); the original simpleCI's command.
inline constexpr std::string_view kDefaultTestCommand = "python3 -m unittest discover -s tests -v";
inline constexpr size_t kMaxTextLen = 4096;          // error text, free-form strings
inline constexpr size_t kMaxChunkBytes = 64 * 1024;  // one OUTPUT chunk
inline constexpr size_t kMaxWatchBytes = 1024 * 1024;  // output in one WATCH_REPLY
inline constexpr size_t kMaxOutputCap = 16 * 1024 * 1024;  // largest output a job keeps
inline constexpr size_t kMaxListLen = 1000;          // results / runners / job ids in one message
inline constexpr size_t kMaxCounters = 64;           // entries of a counters map
inline constexpr size_t kMaxMetrics = 1000;          // entries of a METRICS_REPLY
inline constexpr int kMaxDepth = 6;                  // msgpack nesting (EVENTS > event > runners > runner > jobs)
// msgpack values in one body, counted before unpacking (each costs a 24-byte msgpack::object
// however short its encoding). The largest legal message is a STATUS_REPLY listing 1000 runners
// with 1000 job ids each (~1,020,000 values); anything a dispatcher receives (requests, runner
// messages; the largest is a REGISTER with 1000 held jobs) has at most ~1,010.
inline constexpr size_t kMaxObjects = 1'100'000;
inline constexpr size_t kMaxRequestObjects = 2048;
// Whole-frame ceiling, set as ZMQ_MAXMSGSIZE on every socket: the largest legal body is a
// RESULT or RESULTS_REPLY carrying kMaxOutputCap bytes of output plus small fields.
inline constexpr int64_t kMaxFrameBytes = kMaxOutputCap + 1024 * 1024;

inline constexpr uint32_t kMaxAttempt = 1000;          // attempt number of a job
inline constexpr uint32_t kMaxCapacity = 256;          // job slots of one runner
inline constexpr uint32_t kMaxTimeoutS = 7 * 24 * 3600;  // a job's timeout, seconds
inline constexpr uint32_t kMinHeartbeatMs = 10;
inline constexpr uint32_t kMaxHeartbeatMs = 600000;
inline constexpr int64_t kMaxTimeMs = int64_t{1} << 50;  // ~35,000 years: rejects garbage
inline constexpr uint64_t kMaxOffset = uint64_t{1} << 50;  // byte offset into a job's output
// PRUNE_REQUEST: days, and jobs pruned by one request (ask again while a reply reaches it).
inline constexpr uint32_t kMaxPruneDays = 36500;
inline constexpr uint64_t kMaxPrunePerRequest = 1000;

// --- The dispatcher's defaults and the ranges of its flags. ---
inline constexpr uint32_t kDefaultHeartbeatMs = 1000;
inline constexpr uint32_t kDefaultMaxAttempts = 3;
inline constexpr uint32_t kMaxMaxAttempts = 100;
inline constexpr uint32_t kDefaultJobTimeoutS = 600;
inline constexpr size_t kMinOutputCap = 1024;
inline constexpr uint64_t kDefaultMaxQueued = 100000;
inline constexpr uint64_t kMaxMaxQueued = 10000000;
inline constexpr size_t kDefaultLiveWindow = 512 * 1024;  // newest output bytes kept per running job
inline constexpr size_t kMaxNotifyBranches = 64;   // branches named in one NOTIFY or WAKE
inline constexpr int64_t kObserverHelloMs = 10000;    // an observer's OBSERVER_HELLO interval
inline constexpr int64_t kObserverExpiryMs = 35000;   // the dispatcher forgets an observer silent this long
inline constexpr size_t kMaxObservers = 256;          // observers the dispatcher wakes (the oldest-heard go)
inline constexpr int64_t kMinWakeGapMs = 50;
// The event feed (PROTOCOL.md "Events").
// Repositories, jobs per commit and labels (docs/MULTI.md; protocol version 2).
inline constexpr size_t kMaxRepos = 256;          // repositories one dispatcher declares
inline constexpr size_t kMaxLabels = 32;          // labels of one runner (its automatic ones too)
inline constexpr size_t kMaxJobLabels = 16;       // labels one job asks for
inline constexpr size_t kMaxJobsPerCommit = 32;   // .simpleci/jobs/* of one commit
inline constexpr size_t kMaxWaitingLen = 256;     // a queued job's waiting reason
inline constexpr uint32_t kMaxRepoLimit = 100000; // --repo-limit
inline constexpr size_t kMaxSubscribers = 64;            // peers subscribed at once
inline constexpr int64_t kFeedKeepaliveMs = 5000;        // a keepalive EVENT at least this often
inline constexpr int64_t kFeedSilenceMs = 3 * kFeedKeepaliveMs;  // a subscriber's "dispatcher gone"
inline constexpr size_t kFeedBudgetBytes = size_t{8} << 20;  // unsent feed bytes before a drop
inline constexpr size_t kRunnerLiveBacklog = size_t{1} << 20;  // live output a runner holds unsent          // an observer polls at most this often when woken

// --- Defaults and ranges of flags that never reach the wire (runner, observer, client). ---
inline constexpr int64_t kDefaultKillGraceMs = 10000;        // simpleci-runner --kill-grace-ms
inline constexpr int64_t kMaxKillGraceMs = 600000;
inline constexpr int64_t kDefaultPollMs = 1000;              // simpleci-observer --poll-ms
inline constexpr int64_t kMinPollMs = 10;
inline constexpr int64_t kMaxPollMs = 3600000;
inline constexpr int64_t kDefaultClientTimeoutMs = 5000;     // simpleci --timeout-ms
inline constexpr int64_t kMaxClientTimeoutMs = 3600000;
inline constexpr int64_t kDefaultWatchIntervalMs = 200;      // simpleci watch --interval-ms
inline constexpr int64_t kMinWatchIntervalMs = 10;
inline constexpr int64_t kMaxWatchIntervalMs = 60000;
inline constexpr int64_t kDefaultResultsLimit = 20;          // simpleci results --limit

}  // namespace simpleci::msg
