// `simpleci-bench idle`: what the pipeline costs while nothing happens. The real dispatcher, one
// idle runner and the observer polling an unchanged origin every --poll-ms; after the first
// commit's result and a 2 s settle, CPU over --seconds and resident memory.
#include <unistd.h>

#include <cstdio>
#include <thread>

#include <nlohmann/json.hpp>

#include "tools/bench/options.h"
#include "tools/bench/pipeline.h"

namespace simpleci::bench {

namespace {

using Clock = std::chrono::steady_clock;

// CPU of one process over a window, as % of one core: from /proc/PID/stat (clock ticks, as
// `top` counts) and from the threads' schedstat (exact).
struct CpuWindow {
  pid_t pid;
  long ticks0 = 0;
  double ns0 = 0;
  double pct_ticks = 0, pct_exact = 0;
  explicit CpuWindow(pid_t p) : pid(p), ticks0(cpu_ticks(p)), ns0(cpu_ns(p)) {}
  void end(double wall_s) {
    pct_ticks = 100.0 * ticks_ms(cpu_ticks(pid) - ticks0) / 1000.0 / wall_s;
    pct_exact = 100.0 * (cpu_ns(pid) - ns0) / 1e9 / wall_s;
  }
};

nlohmann::json memory_json(const Memory& m) {
  return {{"rss_kb", m.rss_kb}, {"anon_kb", m.anon_kb}, {"file_kb", m.file_kb}, {"hwm_kb", m.hwm_kb}};
}

}  // namespace

int run_idle(const IdleOptions& o) {
  TempDirGuard tmp;
  Pipeline p;
  if (!open_run(o, &tmp, &p)) return 1;
  std::printf("idle: %d s window, observer polling every %d ms, binaries from %s\n", o.seconds, o.poll_ms,
              bin_folder(o.bin).c_str());
  std::fflush(stdout);
  Repo repo;
  const fs::path rc = tmp.path / "runner-0", oc = tmp.path / "observer-clone";
  bool ok = make_repo(tmp.path, &repo) && clone(repo.origin, rc) && clone(repo.origin, oc) && p.start_dispatcher();
  if (ok) {
    p.start_runner(rc, "bench-0", 1);
    p.start_observer(oc, o.poll_ms);
    ok = p.wait_runners(1, std::chrono::seconds(30)) && p.wait_result(git_head(repo.work), std::chrono::seconds(30));
  }
  if (!ok) {
    p.stop_all();
    tmp.keep = true;
    return 1;
  }
  std::this_thread::sleep_for(std::chrono::seconds(2));  // settle
  CpuWindow obs(p.observer), disp(p.dispatcher), runner(p.runners[0]);
  const auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(o.seconds));
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  for (CpuWindow* w : {&obs, &disp, &runner}) w->end(wall);
  const Memory dm = memory(p.dispatcher), rm = memory(p.runners[0]), om = memory(p.observer);
  p.stop_all();
  std::printf("observer CPU: %.2f %% of a core (/proc stat ticks; %.2f %% by schedstat; target <= 0.5 %%)\n",
              obs.pct_ticks, obs.pct_exact);
  std::printf("dispatcher CPU %.2f %%, runner CPU %.2f %% (idle, ticks)\n", disp.pct_ticks, runner.pct_ticks);
  std::printf("dispatcher RSS: %ld KiB (anon %ld, file %ld; target <= 8192 KiB)\n", dm.rss_kb, dm.anon_kb, dm.file_kb);
  std::printf("runner RSS: %ld KiB (anon %ld, file %ld); observer RSS %ld KiB (anon %ld, file %ld)\n", rm.rss_kb,
              rm.anon_kb, rm.file_kb, om.rss_kb, om.anon_kb, om.file_kb);
  nlohmann::json j = {{"seconds", o.seconds},
                      {"poll_ms", o.poll_ms},
                      {"window_s", rounded(wall, 3)},
                      {"observer_cpu_pct", rounded(obs.pct_ticks, 3)},
                      {"observer_cpu_pct_schedstat", rounded(obs.pct_exact, 3)},
                      {"dispatcher_cpu_pct", rounded(disp.pct_ticks, 3)},
                      {"dispatcher_cpu_pct_schedstat", rounded(disp.pct_exact, 3)},
                      {"runner_cpu_pct", rounded(runner.pct_ticks, 3)},
                      {"runner_cpu_pct_schedstat", rounded(runner.pct_exact, 3)},
                      {"dispatcher_rss_kb", dm.rss_kb},
                      {"runner_rss_kb", rm.rss_kb},
                      {"observer_rss_kb", om.rss_kb},
                      {"dispatcher", memory_json(dm)},
                      {"runner", memory_json(rm)},
                      {"observer", memory_json(om)}};
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

}  // namespace simpleci::bench
