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
#include "tools/bench/checkout.h"
#include "tools/bench/dispatch.h"
#include "tools/bench/soak.h"

using namespace simpleci;

namespace {
int run_main(int argc, char** argv) {
  CLI::App app{"simpleCI benchmarks"};
  app.require_subcommand(1);
  bench::DispatchOptions d;
  int64_t jobs = 20000, window = 256;
  auto* dispatch = app.add_subcommand("dispatch", "dispatcher throughput and latency");
  dispatch->add_option("--runners", d.runners, "fake runners (1..256)");
  dispatch->add_option("--jobs", jobs, "jobs to run (1..10000000)");
  dispatch->add_option("--window", window, "jobs in flight at once (1..100000)");
  dispatch->add_option("--dispatcher-bin", d.dispatcher_bin, "dispatcher executable to measure");
  dispatch->add_option("--dispatcher-arg", d.dispatcher_args, "extra dispatcher argument (repeatable), e.g. --fsync-results")
      ->allow_extra_args(false);
  dispatch->add_flag("--keep", d.keep, "keep the temporary folder");
  dispatch->add_option("--work-dir", d.work_dir, "where the temporary folder goes (default $TMPDIR or /tmp)");
  bench::E2eOptions e;
  auto* e2e = app.add_subcommand("e2e", "commit -> result latency through the whole pipeline");
  e2e->add_option("--commits", e.commits, "commits to time (1..10000)");
  e2e->add_option("--poll-ms", e.poll_ms, "observer poll interval (10..60000)");
  e2e->add_flag("--keep", e.keep, "keep the temporary folder");
  e2e->add_option("--work-dir", e.work_dir, "where the temporary folder goes (default $TMPDIR or /tmp)");
  bench::CheckoutOptions k;
  int64_t files = 2000, file_bytes = 2048;
  auto* checkout = app.add_subcommand("checkout", "the runner's checkout cost beside git's");
  checkout->add_option("--files", files, "files in the generated repository (1..200000)");
  checkout->add_option("--file-bytes", file_bytes, "size of each file (1..1048576)");
  checkout->add_option("--commits", k.commits, "commits to check out (2..1000)");
  checkout->add_flag("--keep", k.keep, "keep the temporary folder");
  checkout->add_option("--work-dir", k.work_dir, "where the temporary folder goes (default $TMPDIR or /tmp)");
  bench::FloodOptions f;
  int64_t queued = 50000, finished = 0, requests = 4000;
  auto* flood = app.add_subcommand("flood", "COMMIT latency while another socket floods requests");
  flood->add_option("--queued", queued, "queued jobs stored before the start (0..1000000)");
  flood->add_option("--finished", finished, "finished jobs stored before the start (0..1000000)");
  flood->add_option("--requests", requests, "requests per flood (1..100000)");
  flood->add_option("--samples", f.samples, "COMMITs timed (1..1000)");
  flood->add_flag("--results", f.results, "flood with RESULTS requests (limit 1000) instead of STATUS");
  flood->add_option("--dispatcher-bin", f.dispatcher_bin, "dispatcher executable to measure");
  flood->add_flag("--keep", f.keep, "keep the temporary folder");
  flood->add_option("--work-dir", f.work_dir, "where the temporary folder goes (default $TMPDIR or /tmp)");
  bench::SoakOptions so;
  auto* soak = app.add_subcommand("soak", "memory of the observer and the runner over many polls / jobs");
  soak->add_option("--component", so.component, "observer, runner or both");
  soak->add_option("--count", so.count, "observer polls and runner jobs (10..1000000)");
  soak->add_option("--poll-ms", so.poll_ms, "the observer's poll interval (10..60000)");
  soak->add_flag("--keep", so.keep, "keep the temporary folder");
  soak->add_option("--work-dir", so.work_dir, "where the temporary folder goes (default $TMPDIR or /tmp)");
  int code = 0;
  const std::string prog = "simpleci-bench";
  if (!cli::parse(app, argc, argv, prog, &code)) return code;
  if (dispatch->parsed()) {
    if (!cli::in_range(prog, "--runners", d.runners, 1, 256) || !cli::in_range(prog, "--jobs", jobs, 1, 10000000) ||
        !cli::in_range(prog, "--window", window, 1, 100000)) {
      return cli::kUsageError;
    }
    d.jobs = static_cast<size_t>(jobs);
    d.window = static_cast<size_t>(window);
    return bench::run_dispatch(d);
  }
  if (flood->parsed()) {
    if (!cli::in_range(prog, "--queued", queued, 0, 1000000) || !cli::in_range(prog, "--finished", finished, 0, 1000000) ||
        !cli::in_range(prog, "--requests", requests, 1, 100000) || !cli::in_range(prog, "--samples", f.samples, 1, 1000)) {
      return cli::kUsageError;
    }
    f.queued = static_cast<size_t>(queued);
    f.finished = static_cast<size_t>(finished);
    f.requests = static_cast<size_t>(requests);
    return bench::run_flood(f);
  }
  if (soak->parsed()) {
    if (so.component != "observer" && so.component != "runner" && so.component != "both") {
      return cli::fail(prog, "--component must be observer, runner or both, got '" + so.component + "'", cli::kUsageError);
    }
    if (!cli::in_range(prog, "--count", so.count, 10, 1000000) || !cli::in_range(prog, "--poll-ms", so.poll_ms, 10, 60000)) {
      return cli::kUsageError;
    }
    return bench::run_soak(so);
  }
  if (checkout->parsed()) {
    if (!cli::in_range(prog, "--files", files, 1, 200000) || !cli::in_range(prog, "--file-bytes", file_bytes, 1, 1048576) ||
        !cli::in_range(prog, "--commits", k.commits, 2, 1000)) {
      return cli::kUsageError;
    }
    k.files = static_cast<size_t>(files);
    k.file_bytes = static_cast<size_t>(file_bytes);
    return bench::run_checkout(k);
  }
  if (!cli::in_range(prog, "--commits", e.commits, 1, 10000) || !cli::in_range(prog, "--poll-ms", e.poll_ms, 10, 60000)) {
    return cli::kUsageError;
  }
  return bench::run_e2e(e);
}
}  // namespace

int main(int argc, char** argv) { return simpleci::cli::guarded_main("simpleci-bench", run_main, argc, argv); }
