// `simpleci-bench latency`: from starting `simpleci submit COMMIT` to the commit's result file,
// through a warm dispatcher and one runner whose clone already holds every commit (cloned after
// they were pushed; a first job has run). Beside each sample, the floor: one `simpleci status`
// process round trip plus one spawn of the test.
#include <cstdio>

#include <nlohmann/json.hpp>

#include "tools/bench/options.h"
#include "tools/bench/pipeline.h"

namespace simpleci::bench {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

struct Samples {
  std::vector<double> latency, status, spawn, floor;
};

// One sample: the floor, then the submit of commit until its result file; false (after saying
// why) when something failed.
bool sample(const Pipeline& p, const Repo& repo, const std::string& commit, Samples* s) {
  const std::string client = exe(p.bin_dir, "simpleci");
  auto t0 = Clock::now();
  if (run({client, "status", "--dispatcher", p.endpoint}) != 0) {
    std::fprintf(stderr, "simpleci-bench: simpleci status failed\n");
    return false;
  }
  const double status = ms_since(t0);
  t0 = Clock::now();
  if (run({repo.test().string()}) != 0) {
    std::fprintf(stderr, "simpleci-bench: %s failed\n", repo.test().c_str());
    return false;
  }
  const double spawn = ms_since(t0);
  t0 = Clock::now();
  std::string out;
  if (run({client, "submit", commit, "--dispatcher", p.endpoint}, &out) != 0) {
    std::fprintf(stderr, "simpleci-bench: simpleci submit %s failed: %s", commit.c_str(), out.c_str());
    return false;
  }
  if (!wait_for([&] { return p.has_result(commit); }, std::chrono::seconds(30), std::chrono::milliseconds(1))) {
    std::fprintf(stderr, "simpleci-bench: no result for %s within 30 s (see %s)\n", commit.c_str(), p.dir.c_str());
    return false;
  }
  s->latency.push_back(ms_since(t0));
  s->status.push_back(status);
  s->spawn.push_back(spawn);
  s->floor.push_back(status + spawn);
  return true;
}

}  // namespace

int run_latency(const LatencyOptions& o) {
  TempDirGuard tmp;
  Pipeline p;
  if (!open_run(o, &tmp, &p)) return 1;
  std::printf("latency: %d samples, one runner, binaries from %s\n", o.samples, bin_folder(o.bin).c_str());
  std::fflush(stdout);
  Repo repo;
  // One commit to warm up with, then one per sample; all pushed before the runner clones.
  std::vector<std::string> ids;
  const fs::path rc = tmp.path / "runner-0";
  bool ok = make_repo(tmp.path, &repo) && !(ids = add_commits(repo.work, o.samples + 1, "latency")).empty() &&
            run(git_argv(repo.work, {"push", "-q", "origin", "main"})) == 0 && clone(repo.origin, rc) &&
            p.start_dispatcher();
  if (ok) {
    p.start_runner(rc, "bench-0", 1);
    ok = p.wait_runners(1, std::chrono::seconds(30)) &&
         run({exe(o.bin, "simpleci"), "submit", ids[0], "--dispatcher", p.endpoint}) == 0 &&
         p.wait_result(ids[0], std::chrono::seconds(30));
  }
  Samples s;
  for (int i = 1; ok && i <= o.samples; ++i) ok = sample(p, repo, ids[static_cast<size_t>(i)], &s);
  p.stop_all();
  if (!ok) {
    tmp.keep = true;  // what went wrong is in its logs
    return 1;
  }
  const double p50 = percentile(s.latency, 50), p90 = percentile(s.latency, 90), f50 = percentile(s.floor, 50);
  std::printf("submit -> result: p50 %.1f ms, p90 %.1f ms\n", p50, p90);
  std::printf("floor (status round trip %.1f ms + test spawn %.1f ms, p50s): p50 %.1f ms\n", percentile(s.status, 50),
              percentile(s.spawn, 50), f50);
  std::printf("difference: %.1f ms over the floor (target <= 10 ms)\n", p50 - f50);
  nlohmann::json j = {{"samples", o.samples},
                      {"p50_ms", rounded(p50, 1)},
                      {"p90_ms", rounded(p90, 1)},
                      {"floor_p50_ms", rounded(f50, 1)},
                      {"floor_p90_ms", rounded(percentile(s.floor, 90), 1)},
                      {"status_p50_ms", rounded(percentile(s.status, 50), 1)},
                      {"spawn_p50_ms", rounded(percentile(s.spawn, 50), 1)},
                      {"over_floor_ms", rounded(p50 - f50, 1)}};
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

}  // namespace simpleci::bench
