// The options of every `simpleci-bench` subcommand (parsed in main.cpp), and the function that
// runs each. Every run works in a temporary folder (RunDir) it removes unless told --keep; each
// prints human lines, then one JSON line with its figures.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace simpleci::bench {

// Where a run's temporary folder goes, and whether it stays afterwards.
struct RunDir {
  std::string work_dir;  // "" = $TMPDIR or /tmp
  bool keep = false;
};

// `dispatch`: jobs through the real dispatcher with fake runners, beside a bare broker.
struct DispatchOptions : RunDir {
  int runners = 8;
  size_t jobs = 20000;
  size_t window = 256;
  int subscribers = 0;  // > 0: also runs with this many event-feed subscribers, and the ratio
  int subscriber_pairs = 3;  // runs with subscribers (alternating with as many without)
  int timeout_s = 300;
  std::string dispatcher_bin;
  std::vector<std::string> dispatcher_args;  // added to the dispatcher's command line
};
int run_dispatch(const DispatchOptions& o);

// `e2e`: commit -> result latency through the real observer, dispatcher and runner.
struct E2eOptions : RunDir {
  int commits = 20;
  int poll_ms = 200;
};
int run_e2e(const E2eOptions& o);

// `flood`: COMMIT latency from one socket while another floods requests.
struct FloodOptions : RunDir {
  size_t queued = 50000;    // queued jobs in the store before the dispatcher starts
  size_t finished = 0;      // finished jobs in the store
  size_t requests = 4000;   // requests in each flood
  int samples = 20;         // COMMITs timed, one per flood
  bool results = false;     // flood with RESULTS (limit 1000) instead of STATUS
  std::string dispatcher_bin;
};
int run_flood(const FloodOptions& o);

// `checkout`: the runner's checkout (libgit2) beside git itself.
struct CheckoutOptions : RunDir {
  size_t files = 2000;
  size_t file_bytes = 2048;
  int commits = 20;
};
int run_checkout(const CheckoutOptions& o);

// `soak`: does the memory of a long-running component stay flat?
struct SoakOptions : RunDir {
  std::string component = "both";  // observer, runner or both
  int count = 10000;               // observer polls / runner jobs
  int poll_ms = 10;                // the observer's --poll-ms
};
// Drives the real observer through `count` polls of its origin and the real runner through
// `count` jobs (each for a commit its clone has to fetch), with the benchmark itself playing
// the dispatcher (a ROUTER on loopback). Samples VmRSS from /proc/PID/status and prints, per
// component, RSS after the first tenth (the start: allocators and caches warmed up), at the
// end and at its peak, and the growth per 1,000 iterations; the last line is JSON with
// <component>_rss_start_kb, _rss_end_kb, _rss_peak_kb, _growth_kb_per_1000 and _iterations.
int run_soak(const SoakOptions& o);

// `jobs`, `latency` and `idle` start the executables of one folder (--bin), so that the same
// benchmark can measure an old build beside a new one.
struct BinDir : RunDir {
  std::string bin;  // "" = the folder of simpleci-bench
};

// `jobs`: throughput of real trivial jobs (`.simpleci/test` = exit 0) from one push of `commits`
// commits to the last result file, through the real observer, dispatcher and `runners` runners
// with `slots` slots each; beside runners x slots shell loops running the same test (the floor).
// Also the runners' CPU per job (their own and their reaped children's) beside the loops'.
// Measurement and floor alternate `repeat` times; medians are printed.
struct JobsOptions : BinDir {
  int commits = 500;
  int runners = 4;
  int slots = 1;
  int repeat = 1;
  int poll_ms = 50;  // the observer's
};
int run_jobs(const JobsOptions& o);

// `latency`: `simpleci submit` of a commit the runner already holds -> its result file, through
// a warm dispatcher and one runner; beside one `simpleci status` round trip + one spawn of the
// test (the floor), sample by sample.
struct LatencyOptions : BinDir {
  int samples = 15;
};
int run_latency(const LatencyOptions& o);

// `idle`: observer CPU and dispatcher / runner / observer memory while nothing changes.
struct IdleOptions : BinDir {
  int seconds = 10;
  int poll_ms = 100;
};
int run_idle(const IdleOptions& o);
// `web`: simpleci-web under load (tools/bench/web.cpp): event lateness and fan-out to many SSE
// clients during a burst, a slow / stalled / vanishing reader of a long output.
struct WebOptions : BinDir {
  int commits = 500;
  int clients = 200;
  int runners = 4;
  int poll_ms = 50;     // the observer's
  int output_mib = 16;  // what the loud test prints
  int read_kb_s = 4000;  // the slow reader's pace (4 MB/s)
};
int run_web(const WebOptions& o);

// `queue`: RSS of the dispatcher with --queued jobs in its store beside an empty one (issue 9).
struct QueueOptions : RunDir {
  size_t queued = 1000000;  // queued jobs in the store before the dispatcher starts
  int settle_ms = 1500;     // idle time before memory is read
  int timeout_s = 300;      // for the start (the store is read before the bind) and STATUS
  std::string dispatcher_bin;
};
int run_queue(const QueueOptions& o);

}  // namespace simpleci::bench
