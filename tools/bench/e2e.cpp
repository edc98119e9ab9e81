// `simpleci-bench e2e`: commit -> result file latency through the real observer, dispatcher and
// runner, with a test that only exits 0; then the CPU each component uses while idle.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "tools/bench/dispatch.h"
#include "tools/bench/proc.h"

namespace simpleci::bench {

int run_e2e(const E2eOptions& o) {
  fs::path tmp = make_temp_dir(o.work_dir);
  fs::path up = tmp / "upstream", results = tmp / "results", logs = tmp / "logs";
  fs::create_directories(up / ".simpleci");
  run(git_argv(up, {"init", "-q", "-b", "main"}));
  {
    std::ofstream(up / ".simpleci" / "test") << "#!/bin/sh\nexit 0\n";
  }
  fs::permissions(up / ".simpleci" / "test", fs::perms::owner_exec, fs::perm_options::add);
  run(git_argv(up, {"add", "-A"}));
  run(git_argv(up, {"commit", "-q", "-m", "first"}));
  run({"git", "clone", "-q", up.string(), (tmp / "runner-clone").string()});
  run({"git", "clone", "-q", up.string(), (tmp / "observer-clone").string()});

  fs::path bin = self_dir();
  pid_t disp = start({(bin / "simpleci-dispatcher").string(), "--bind", "tcp://127.0.0.1:0", "--state-dir",
                      (tmp / "state").string(), "--results-dir", results.string(), "--log-dir",
                      logs.string(), "--log-level", "warn"},
                     tmp / "dispatcher.out");
  std::string ep = read_endpoint(tmp / "state");
  pid_t runner = start({(bin / "simpleci-runner").string(), "--dispatcher", ep, "--name", "bench",
                        "--log-dir", logs.string(), "--log-level", "warn", (tmp / "runner-clone").string()},
                       tmp / "runner.out");
  pid_t obs = start({(bin / "simpleci-observer").string(), "--dispatcher", ep, "--poll-ms",
                     std::to_string(o.poll_ms), "--log-dir", logs.string(), "--log-level", "warn",
                     (tmp / "observer-clone").string()},
                    tmp / "observer.out");
  auto cleanup = [&] {
    stop(obs);
    stop(runner);
    stop(disp);
    std::error_code ec;
    if (!o.keep) fs::remove_all(tmp, ec);
  };
  std::string first = git_head(up);
  if (ep.empty() || !wait_for([&] { return fs::exists(results / (first + ".json")); }, std::chrono::seconds(30))) {
    std::fprintf(stderr, "simpleci-bench: the pipeline did not produce a first result (see %s)\n", tmp.c_str());
    cleanup();
    return 1;
  }
  std::printf("e2e: %d commits, observer polling every %d ms\n", o.commits, o.poll_ms);
  std::mt19937 rng(99);
  std::vector<double> lat;
  for (int i = 0; i < o.commits; ++i) {
    // A random pause, so commits are not in step with the observer's timer.
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % static_cast<unsigned>(o.poll_ms + 1)));
    run(git_argv(up, {"commit", "-q", "--allow-empty", "-m", "bench " + std::to_string(i)}));
    auto t0 = std::chrono::steady_clock::now();
    std::string id = git_head(up);
    if (!wait_for([&] { return fs::exists(results / (id + ".json")); }, std::chrono::seconds(30))) {
      std::fprintf(stderr, "simpleci-bench: no result for %s within 30 s\n", id.c_str());
      cleanup();
      return 1;
    }
    lat.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  // Idle: CPU over 2 s with nothing to do.
  long ticks = ::sysconf(_SC_CLK_TCK);
  long d0 = cpu_ticks(disp), r0 = cpu_ticks(runner), o0 = cpu_ticks(obs);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  auto pct = [&](long before, pid_t p) { return 100.0 * static_cast<double>(cpu_ticks(p) - before) / static_cast<double>(ticks) / 2.0; };
  double di = pct(d0, disp), ri = pct(r0, runner), oi = pct(o0, obs);
  long rss = 0, hwm = 0;
  memory_kb(disp, &rss, &hwm);
  std::printf("commit -> result: p50 %.1f ms, p99 %.1f ms; idle CPU: dispatcher %.1f%%, runner %.1f%%, observer %.1f%%; dispatcher RSS %ld KiB\n",
              percentile(lat, 50), percentile(lat, 99), di, ri, oi, rss);
  nlohmann::json j = {{"p50_ms", std::round(percentile(lat, 50) * 10) / 10},
                      {"p99_ms", std::round(percentile(lat, 99) * 10) / 10},
                      {"commits", o.commits},
                      {"poll_ms", o.poll_ms},
                      {"idle_cpu_pct", {{"dispatcher", di}, {"runner", ri}, {"observer", oi}}},
                      {"dispatcher_rss_kb", rss}};
  cleanup();
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

}  // namespace simpleci::bench
