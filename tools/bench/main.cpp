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
//
// The machine is shared and noisy: run several times and compare medians and ratios.
#include <CLI/CLI.hpp>

#include "app/cli.h"
#include "tools/bench/options.h"

using namespace simpleci;

namespace {

const std::string kProg = "simpleci-bench";

// --keep and --work-dir, which every subcommand has.
void add_run_dir(CLI::App* sub, bench::RunDir& r) {
  sub->add_flag("--keep", r.keep, "keep the temporary folder");
  sub->add_option("--work-dir", r.work_dir, "where the temporary folder goes (default $TMPDIR or /tmp)");
}

// Each subcommand: add() declares its flags, run() checks their ranges and runs it.
struct Dispatch {
  bench::DispatchOptions o;
  int64_t jobs = 20000, window = 256;
  CLI::App* sub = nullptr;
  void add(CLI::App& app) {
    sub = app.add_subcommand("dispatch", "dispatcher throughput and latency");
    sub->add_option("--runners", o.runners, "fake runners (1..256)");
    sub->add_option("--jobs", jobs, "jobs to run (1..10000000)");
    sub->add_option("--window", window, "jobs in flight at once (1..100000)");
    sub->add_option("--dispatcher-bin", o.dispatcher_bin, "dispatcher executable to measure");
    sub->add_option("--dispatcher-arg", o.dispatcher_args, "extra dispatcher argument (repeatable), e.g. --fsync-results")
        ->allow_extra_args(false);
    add_run_dir(sub, o);
  }
  int run() {
    if (!cli::in_range(kProg, "--runners", o.runners, 1, 256) || !cli::in_range(kProg, "--jobs", jobs, 1, 10000000) ||
        !cli::in_range(kProg, "--window", window, 1, 100000)) {
      return cli::kUsageError;
    }
    o.jobs = static_cast<size_t>(jobs);
    o.window = static_cast<size_t>(window);
    return bench::run_dispatch(o);
  }
};

struct E2e {
  bench::E2eOptions o;
  CLI::App* sub = nullptr;
  void add(CLI::App& app) {
    sub = app.add_subcommand("e2e", "commit -> result latency through the whole pipeline");
    sub->add_option("--commits", o.commits, "commits to time (1..10000)");
    sub->add_option("--poll-ms", o.poll_ms, "observer poll interval (10..60000)");
    add_run_dir(sub, o);
  }
  int run() {
    if (!cli::in_range(kProg, "--commits", o.commits, 1, 10000) || !cli::in_range(kProg, "--poll-ms", o.poll_ms, 10, 60000)) {
      return cli::kUsageError;
    }
    return bench::run_e2e(o);
  }
};

struct Checkout {
  bench::CheckoutOptions o;
  int64_t files = 2000, file_bytes = 2048;
  CLI::App* sub = nullptr;
  void add(CLI::App& app) {
    sub = app.add_subcommand("checkout", "the runner's checkout cost beside git's");
    sub->add_option("--files", files, "files in the generated repository (1..200000)");
    sub->add_option("--file-bytes", file_bytes, "size of each file (1..1048576)");
    sub->add_option("--commits", o.commits, "commits to check out (2..1000)");
    add_run_dir(sub, o);
  }
  int run() {
    if (!cli::in_range(kProg, "--files", files, 1, 200000) || !cli::in_range(kProg, "--file-bytes", file_bytes, 1, 1048576) ||
        !cli::in_range(kProg, "--commits", o.commits, 2, 1000)) {
      return cli::kUsageError;
    }
    o.files = static_cast<size_t>(files);
    o.file_bytes = static_cast<size_t>(file_bytes);
    return bench::run_checkout(o);
  }
};

struct Flood {
  bench::FloodOptions o;
  int64_t queued = 50000, finished = 0, requests = 4000;
  CLI::App* sub = nullptr;
  void add(CLI::App& app) {
    sub = app.add_subcommand("flood", "COMMIT latency while another socket floods requests");
    sub->add_option("--queued", queued, "queued jobs stored before the start (0..1000000)");
    sub->add_option("--finished", finished, "finished jobs stored before the start (0..1000000)");
    sub->add_option("--requests", requests, "requests per flood (1..100000)");
    sub->add_option("--samples", o.samples, "COMMITs timed (1..1000)");
    sub->add_flag("--results", o.results, "flood with RESULTS requests (limit 1000) instead of STATUS");
    sub->add_option("--dispatcher-bin", o.dispatcher_bin, "dispatcher executable to measure");
    add_run_dir(sub, o);
  }
  int run() {
    if (!cli::in_range(kProg, "--queued", queued, 0, 1000000) || !cli::in_range(kProg, "--finished", finished, 0, 1000000) ||
        !cli::in_range(kProg, "--requests", requests, 1, 100000) || !cli::in_range(kProg, "--samples", o.samples, 1, 1000)) {
      return cli::kUsageError;
    }
    o.queued = static_cast<size_t>(queued);
    o.finished = static_cast<size_t>(finished);
    o.requests = static_cast<size_t>(requests);
    return bench::run_flood(o);
  }
};

struct Soak {
  bench::SoakOptions o;
  CLI::App* sub = nullptr;
  void add(CLI::App& app) {
    sub = app.add_subcommand("soak", "memory of the observer and the runner over many polls / jobs");
    sub->add_option("--component", o.component, "observer, runner or both");
    sub->add_option("--count", o.count, "observer polls and runner jobs (10..1000000)");
    sub->add_option("--poll-ms", o.poll_ms, "the observer's poll interval (10..60000)");
    add_run_dir(sub, o);
  }
  int run() {
    if (o.component != "observer" && o.component != "runner" && o.component != "both") {
      return cli::fail(kProg, "--component must be observer, runner or both, got '" + o.component + "'", cli::kUsageError);
    }
    if (!cli::in_range(kProg, "--count", o.count, 10, 1000000) || !cli::in_range(kProg, "--poll-ms", o.poll_ms, 10, 60000)) {
      return cli::kUsageError;
    }
    return bench::run_soak(o);
  }
};

int run_main(int argc, char** argv) {
  CLI::App app{"simpleCI benchmarks"};
  app.require_subcommand(1);
  Dispatch dispatch;
  E2e e2e;
  Checkout checkout;
  Flood flood;
  Soak soak;
  dispatch.add(app);
  e2e.add(app);
  checkout.add(app);
  flood.add(app);
  soak.add(app);
  int code = 0;
  if (!cli::parse(app, argc, argv, kProg, &code)) return code;
  if (dispatch.sub->parsed()) return dispatch.run();
  if (flood.sub->parsed()) return flood.run();
  if (soak.sub->parsed()) return soak.run();
  if (checkout.sub->parsed()) return checkout.run();
  return e2e.run();
}

}  // namespace

int main(int argc, char** argv) { return simpleci::cli::guarded_main("simpleci-bench", run_main, argc, argv); }
