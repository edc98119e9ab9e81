// `simpleci-bench e2e`: commit -> result file latency through the real observer, dispatcher and
// runner, with a test that only exits 0; then the CPU each component uses while idle.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "tools/bench/options.h"
#include "tools/bench/proc.h"

namespace simpleci::bench {

namespace {

// An upstream repository whose test exits 0, and the runner's and the observer's clones of it.
void make_repositories(const fs::path& tmp, const fs::path& up) {
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
}

// The real dispatcher, runner and observer, with their state, clones and logs under tmp.
struct Pipeline {
  pid_t disp = -1, runner = -1, obs = -1;
  std::string endpoint;  // "" when the dispatcher did not start
};

Pipeline start_pipeline(const fs::path& tmp, const fs::path& results, const fs::path& logs,
                        int poll_ms) {
  const fs::path bin = self_dir();
  Pipeline p;
  p.disp = start({(bin / "simpleci-dispatcher").string(), "--bind", "tcp://127.0.0.1:0", "--state-dir",
                  (tmp / "state").string(), "--results-dir", results.string(), "--log-dir",
                  logs.string(), "--log-level", "warn"},
                 tmp / "dispatcher.out");
  p.endpoint = read_endpoint(tmp / "state");
  p.runner = start({(bin / "simpleci-runner").string(), "--dispatcher", p.endpoint, "--name", "bench",
                    "--log-dir", logs.string(), "--log-level", "warn", (tmp / "runner-clone").string()},
                   tmp / "runner.out");
  p.obs = start({(bin / "simpleci-observer").string(), "--dispatcher", p.endpoint, "--poll-ms",
                 std::to_string(poll_ms), "--log-dir", logs.string(), "--log-level", "warn",
                 (tmp / "observer-clone").string()},
                tmp / "observer.out");
  return p;
}

// Commits o.commits times (at random moments) and times each until its result file appears;
// empty when one did not within 30 s.
std::vector<double> time_commits(const fs::path& up, const fs::path& results, const E2eOptions& o) {
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
      return {};
    }
    lat.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return lat;
}

// Measures the idle CPU over 2 s and prints the figures: a human line, then the JSON line.
void report(const Pipeline& p, const std::vector<double>& lat, const E2eOptions& o,
            const std::function<void()>& cleanup) {
  long ticks = ::sysconf(_SC_CLK_TCK);
  long d0 = cpu_ticks(p.disp), r0 = cpu_ticks(p.runner), o0 = cpu_ticks(p.obs);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  auto pct = [&](long before, pid_t pid) { return 100.0 * static_cast<double>(cpu_ticks(pid) - before) / static_cast<double>(ticks) / 2.0; };
  double di = pct(d0, p.disp), ri = pct(r0, p.runner), oi = pct(o0, p.obs);
  long rss = 0, hwm = 0;
  memory_kb(p.disp, &rss, &hwm);
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
}

}  // namespace

int run_e2e(const E2eOptions& o) {
  fs::path tmp = make_temp_dir(o.work_dir);
  fs::path up = tmp / "upstream", results = tmp / "results", logs = tmp / "logs";
  make_repositories(tmp, up);
  const Pipeline p = start_pipeline(tmp, results, logs, o.poll_ms);
  auto cleanup = [&] {
    stop(p.obs);
    stop(p.runner);
    stop(p.disp);
    std::error_code ec;
    if (!o.keep) fs::remove_all(tmp, ec);
  };
  std::string first = git_head(up);
  if (p.endpoint.empty() ||
      !wait_for([&] { return fs::exists(results / (first + ".json")); }, std::chrono::seconds(30))) {
    std::fprintf(stderr, "simpleci-bench: the pipeline did not produce a first result (see %s)\n", tmp.c_str());
    cleanup();
    return 1;
  }
  std::printf("e2e: %d commits, observer polling every %d ms\n", o.commits, o.poll_ms);
  const std::vector<double> lat = time_commits(up, results, o);
  if (lat.empty()) {
    cleanup();
    return 1;
  }
  report(p, lat, o, cleanup);
  return 0;
}

}  // namespace simpleci::bench
