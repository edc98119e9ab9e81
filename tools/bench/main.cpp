// simpleci-bench: benchmarks of the real executables; each subcommand ends with one JSON line.
//
//   simpleci-bench dispatch --runners 8 --jobs 20000   jobs/s and latency of the dispatcher with
//                                                      its real store, beside a bare ROUTER/DEALER
//                                                      broker doing the same exchange (ceiling)
//   simpleci-bench e2e --commits 50 --poll-ms 200      commit -> result file latency through the
//                                                      real observer, dispatcher and runner
//   simpleci-bench checkout --files 2000 --commits 20  the runner's libgit2 checkout per job,
//                                                      beside git checkout + clean (reference)
//   simpleci-bench flood --queued 50000 --requests 4000 COMMIT latency (p50/p99) from one socket
//                                                      while another floods STATUS (or --results)
//   simpleci-bench soak --count 10000                  RSS of the observer over 10,000 polls and
//                                                      of the runner over 10,000 jobs (flat?)
//   simpleci-bench jobs --commits 500 --runners 4      real trivial jobs: one push of 500 commits
//                                                      -> 500th result file (jobs/s) and runner
//                                                      CPU per job, beside shell loops running
//                                                      the same test (floor); --repeat for medians
//   simpleci-bench latency --samples 15                `simpleci submit` -> result file on a warm
//                                                      runner, beside one `simpleci status` + one
//                                                      spawn of the test (floor)
//   simpleci-bench idle --seconds 10 --poll-ms 100     observer CPU % and dispatcher / runner RSS
//                                                      while the repository does not change
//
//   simpleci-bench web --clients 200 --commits 500     simpleci-web: job_finished events after
//                                                      the result files (p99, late ones) and
//                                                      fan-out to every SSE client; a 4 MB/s
//                                                      reader of a 16 MiB output gets every
//                                                      stored byte; stalled / vanished readers
//                                                      leave nothing behind
//
// jobs, latency, idle and web run the executables in --bin DIR (default: beside simpleci-bench), so
// one benchmark can measure an old build and a new one.
//   simpleci-bench queue --queued 1000000              dispatcher RSS per queued job, load time
//
// The machine is shared and noisy: run several times and compare medians and ratios.
#include <string>

#include <CLI/CLI.hpp>

#include "app/cli.h"
#include "messages/limits.h"
#include "tools/bench/options.h"

using namespace simpleci;

namespace {

const std::string kProg = "simpleci-bench";

// --keep and --work-dir, which every subcommand has.
void add_run_dir(CLI::App* sub, bench::RunDir& r) {
  sub->add_flag("--keep", r.keep, "keep the temporary folder");
  sub->add_option("--work-dir", r.work_dir, "where the temporary folder goes (default $TMPDIR or /tmp)");
}

// What every subcommand shares: its CLI11 subcommand, and numeric flags whose range is stated
// once, in the help text and in the check that run() makes before measuring anything.
struct Subcommand {
  CLI::App* sub = nullptr;
  cli::RangedFlags ranges;

  template <class T>
  void ranged(const std::string& flag, T& value, const std::string& help, int64_t lo, int64_t hi) {
    ranges.add(*sub, flag, value, help, lo, hi);
  }
  bool in_range() const { return ranges.check(kProg); }
};

// --bin, which the subcommands that start the whole pipeline have.
void add_bin(CLI::App* sub, bench::BinDir& b) {
  sub->add_option("--bin", b.bin, "folder of the simpleci executables to measure (default: beside simpleci-bench)");
  add_run_dir(sub, b);
}

// Each subcommand: add() declares its flags, run() checks them and runs it.
struct Dispatch : Subcommand {
  bench::DispatchOptions o;
  void add(CLI::App& app) {
    sub = app.add_subcommand("dispatch", "dispatcher throughput and latency");
    ranged("--runners", o.runners, "fake runners", 1, 256);
    ranged("--jobs", o.jobs, "jobs to run", 1, 10000000);
    ranged("--window", o.window, "jobs in flight at once", 1, 100000);
    ranged("--subscribers", o.subscribers, "also run with this many event-feed subscribers and compare", 0,
           static_cast<int64_t>(msg::kMaxSubscribers));
    ranged("--pairs", o.subscriber_pairs, "with --subscribers: runs with them, alternating with as many without", 1, 20);
    sub->add_option("--dispatcher-bin", o.dispatcher_bin, "dispatcher executable to measure");
    sub->add_option("--dispatcher-arg", o.dispatcher_args, "extra dispatcher argument (repeatable), e.g. --fsync-results")
        ->allow_extra_args(false);
    add_run_dir(sub, o);
  }
  int run() { return in_range() ? bench::run_dispatch(o) : cli::kUsageError; }
};

struct E2e : Subcommand {
  bench::E2eOptions o;
  void add(CLI::App& app) {
    sub = app.add_subcommand("e2e", "commit -> result latency through the whole pipeline");
    ranged("--commits", o.commits, "commits to time", 1, 10000);
    ranged("--poll-ms", o.poll_ms, "observer poll interval", 10, 60000);
    add_run_dir(sub, o);
  }
  int run() { return in_range() ? bench::run_e2e(o) : cli::kUsageError; }
};

struct Checkout : Subcommand {
  bench::CheckoutOptions o;
  void add(CLI::App& app) {
    sub = app.add_subcommand("checkout", "the runner's checkout cost beside git's");
    ranged("--files", o.files, "files in the generated repository", 1, 200000);
    ranged("--file-bytes", o.file_bytes, "size of each file", 1, 1048576);
    ranged("--commits", o.commits, "commits to check out", 2, 1000);
    add_run_dir(sub, o);
  }
  int run() { return in_range() ? bench::run_checkout(o) : cli::kUsageError; }
};

struct Flood : Subcommand {
  bench::FloodOptions o;
  void add(CLI::App& app) {
    sub = app.add_subcommand("flood", "COMMIT latency while another socket floods requests");
    ranged("--queued", o.queued, "queued jobs stored before the start", 0, 1000000);
    ranged("--finished", o.finished, "finished jobs stored before the start", 0, 1000000);
    ranged("--requests", o.requests, "requests per flood", 1, 100000);
    ranged("--samples", o.samples, "COMMITs timed", 1, 1000);
    sub->add_flag("--results", o.results, "flood with RESULTS requests (limit 1000) instead of STATUS");
    sub->add_option("--dispatcher-bin", o.dispatcher_bin, "dispatcher executable to measure");
    add_run_dir(sub, o);
  }
  int run() { return in_range() ? bench::run_flood(o) : cli::kUsageError; }
};

struct Queue : Subcommand {
  bench::QueueOptions o;
  void add(CLI::App& app) {
    sub = app.add_subcommand("queue", "dispatcher RSS per queued job and its load time");
    ranged("--queued", o.queued, "queued jobs stored before the start", 1, 10000000);
    ranged("--settle-ms", o.settle_ms, "idle time before memory is read", 0, 60000);
    sub->add_option("--dispatcher-bin", o.dispatcher_bin, "dispatcher executable to measure");
    add_run_dir(sub, o);
  }
  int run() { return in_range() ? bench::run_queue(o) : cli::kUsageError; }
};

struct Soak : Subcommand {
  bench::SoakOptions o;
  void add(CLI::App& app) {
    sub = app.add_subcommand("soak", "memory of the observer and the runner over many polls / jobs");
    sub->add_option("--component", o.component, "observer, runner or both");
    ranged("--count", o.count, "observer polls and runner jobs", 10, 1000000);
    ranged("--poll-ms", o.poll_ms, "the observer's poll interval", 10, 60000);
    add_run_dir(sub, o);
  }
  int run() {
    if (o.component != "observer" && o.component != "runner" && o.component != "both") {
      return cli::fail(kProg, "--component must be observer, runner or both, got '" + o.component + "'", cli::kUsageError);
    }
    return in_range() ? bench::run_soak(o) : cli::kUsageError;
  }
};

struct Jobs : Subcommand {
  bench::JobsOptions o;
  void add(CLI::App& app) {
    sub = app.add_subcommand("jobs", "real trivial jobs: push -> last result file, beside shell loops");
    ranged("--commits", o.commits, "commits in the push (jobs per round)", 1, 100000);
    ranged("--runners", o.runners, "runner processes", 1, 64);
    ranged("--slots", o.slots, "slots (--jobs) of each runner", 1, 256);
    ranged("--repeat", o.repeat, "rounds of floor + measurement", 1, 100);
    ranged("--poll-ms", o.poll_ms, "the observer's poll interval", 10, 60000);
    add_bin(sub, o);
  }
  int run() { return in_range() ? bench::run_jobs(o) : cli::kUsageError; }
};

struct Latency : Subcommand {
  bench::LatencyOptions o;
  void add(CLI::App& app) {
    sub = app.add_subcommand("latency", "simpleci submit -> result file on a warm runner, beside its floor");
    ranged("--samples", o.samples, "submits timed", 1, 10000);
    add_bin(sub, o);
  }
  int run() { return in_range() ? bench::run_latency(o) : cli::kUsageError; }
};

struct Idle : Subcommand {
  bench::IdleOptions o;
  void add(CLI::App& app) {
    sub = app.add_subcommand("idle", "observer CPU and the components' memory while nothing changes");
    ranged("--seconds", o.seconds, "length of the measured window", 1, 3600);
    ranged("--poll-ms", o.poll_ms, "the observer's poll interval", 10, 60000);
    add_bin(sub, o);
  }
  int run() { return in_range() ? bench::run_idle(o) : cli::kUsageError; }
};

struct Web : Subcommand {
  bench::WebOptions o;
  void add(CLI::App& app) {
    sub = app.add_subcommand("web", "simpleci-web: SSE events in a burst, many clients, slow and vanished readers");
    ranged("--commits", o.commits, "commits in the burst", 1, 100000);
    ranged("--clients", o.clients, "SSE clients on /api/events", 1, 1000);
    ranged("--runners", o.runners, "runner processes (one slot each)", 1, 64);
    ranged("--poll-ms", o.poll_ms, "the observer's poll interval", 10, 60000);
    ranged("--output-mib", o.output_mib, "MiB the loud test prints (at most the output cap, 16)", 1, 16);
    ranged("--read-kb-s", o.read_kb_s, "the slow reader's pace in kB/s", 1, 10000000);
    add_bin(sub, o);
  }
  int run() { return in_range() ? bench::run_web(o) : cli::kUsageError; }
};

int run_main(int argc, char** argv) {
  CLI::App app{"simpleCI benchmarks"};
  app.require_subcommand(1);
  Dispatch dispatch;
  E2e e2e;
  Checkout checkout;
  Flood flood;
  Soak soak;
  Jobs jobs;
  Latency latency;
  Idle idle;
  Queue queue;
  Web web;
  dispatch.add(app);
  e2e.add(app);
  checkout.add(app);
  flood.add(app);
  soak.add(app);
  jobs.add(app);
  latency.add(app);
  idle.add(app);
  queue.add(app);
  web.add(app);
  int code = 0;
  if (!cli::parse(app, argc, argv, kProg, &code)) return code;
  if (dispatch.sub->parsed()) return dispatch.run();
  if (flood.sub->parsed()) return flood.run();
  if (soak.sub->parsed()) return soak.run();
  if (queue.sub->parsed()) return queue.run();
  if (checkout.sub->parsed()) return checkout.run();
  if (jobs.sub->parsed()) return jobs.run();
  if (latency.sub->parsed()) return latency.run();
  if (idle.sub->parsed()) return idle.run();
  if (web.sub->parsed()) return web.run();
  return e2e.run();
}

}  // namespace

int main(int argc, char** argv) { return simpleci::cli::guarded_main("simpleci-bench", run_main, argc, argv); }
