// `simpleci-bench jobs`: runner throughput on real trivial jobs. N commits pushed at once to a
// bare origin, the real observer (polling every 50 ms), dispatcher and --runners runners with
// --slots slots each; from the push to the Nth result file. Beside it, in the same run, the
// floor: runners x slots /bin/sh loops running the same `.simpleci/test` N times in all.
#include <sys/wait.h>

#include <cstdio>

#include <nlohmann/json.hpp>

#include "tools/bench/options.h"
#include "tools/bench/pipeline.h"

namespace simpleci::bench {

namespace {

using Clock = std::chrono::steady_clock;

double secs_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// One measurement (the pipeline) or one floor (the shell loops).
struct Round {
  double jobs_per_s = 0;
  double cpu_ms_per_job = 0;
};

// loops /bin/sh loops in the work clone, running its test n times in all; false (after saying
// why) when one failed.
bool floor_round(const Repo& repo, const fs::path& dir, int n, int loops, Round* out) {
  const char* script = "cd \"$1\" && i=0; while [ $i -lt \"$2\" ]; do ./.simpleci/test || exit 1; i=$((i+1)); done";
  const double cpu0 = children_cpu_ms();
  const auto t0 = Clock::now();
  std::vector<pid_t> pids;
  for (int k = 0; k < loops; ++k) {
    const int share = n / loops + (k < n % loops ? 1 : 0);
    pids.push_back(start({"/bin/sh", "-c", script, "floor", repo.work.string(), std::to_string(share)}, dir / "floor.out"));
  }
  bool ok = true;
  for (pid_t p : pids) {
    int st = 0;
    ok = ::waitpid(p, &st, 0) == p && WIFEXITED(st) && WEXITSTATUS(st) == 0 && ok;
  }
  const double secs = secs_since(t0);
  if (!ok) {
    std::fprintf(stderr, "simpleci-bench: a floor loop failed (see %s)\n", (dir / "floor.out").c_str());
    return false;
  }
  out->jobs_per_s = n / secs;
  out->cpu_ms_per_job = (children_cpu_ms() - cpu0) / n;
  return true;
}

long runners_ticks(const Pipeline& p) {
  long sum = 0;
  for (pid_t r : p.runners) sum += cpu_ticks_with_children(r);
  return sum;
}

// CPU of the dispatcher and the observer per job, beside the runners' (for the reader).
struct Others {
  double dispatcher_ms = 0, observer_ms = 0;
};

// N new commits, one push, and the wait for their N result files; false (after saying why) when
// they did not all come before the deadline.
bool pipeline_round(Pipeline& p, const Repo& repo, const JobsOptions& o, int round, Round* out, Others* others) {
  const std::vector<std::string> ids = add_commits(repo.work, o.commits, "round " + std::to_string(round));
  if (ids.empty()) return false;
  const long r0 = runners_ticks(p), d0 = cpu_ticks(p.dispatcher), o0 = cpu_ticks(p.observer);
  const auto t0 = Clock::now();
  if (run(git_argv(repo.work, {"push", "-q", "origin", "main"})) != 0) {
    std::fprintf(stderr, "simpleci-bench: git push failed\n");
    return false;
  }
  // Jobs are dispatched oldest first, so results come roughly in order: each poll checks the
  // oldest commit without a result and moves on while they exist.
  size_t done = 0;
  const auto deadline = std::chrono::milliseconds(60000 + 250LL * o.commits);
  if (!wait_for(
          [&] {
            while (done < ids.size() && p.has_result(ids[done])) ++done;
            return done == ids.size();
          },
          deadline)) {
    std::fprintf(stderr, "simpleci-bench: %zu of %d results within %lld ms (see %s)\n", done, o.commits,
                 static_cast<long long>(deadline.count()), p.dir.c_str());
    return false;
  }
  const double secs = secs_since(t0);
  out->jobs_per_s = o.commits / secs;
  out->cpu_ms_per_job = ticks_ms(runners_ticks(p) - r0) / o.commits;
  others->dispatcher_ms = ticks_ms(cpu_ticks(p.dispatcher) - d0) / o.commits;
  others->observer_ms = ticks_ms(cpu_ticks(p.observer) - o0) / o.commits;
  return true;
}

nlohmann::json figures(const std::vector<Round>& v, double Round::*field) {
  nlohmann::json a = nlohmann::json::array();
  for (const Round& r : v) a.push_back(rounded(r.*field));
  return a;
}

std::vector<double> column(const std::vector<Round>& v, double Round::*field) {
  std::vector<double> out;
  for (const Round& r : v) out.push_back(r.*field);
  return out;
}

// Median of the ratio of each measurement to the floor taken just before it.
double ratio(const std::vector<Round>& m, const std::vector<Round>& f, double Round::*field) {
  std::vector<double> r;
  for (size_t i = 0; i < m.size(); ++i) r.push_back(f[i].*field > 0 ? m[i].*field / (f[i].*field) : 0);
  return median(r);
}

void report(const JobsOptions& o, const std::vector<Round>& m, const std::vector<Round>& f, const std::vector<Others>& others) {
  const double jps = median(column(m, &Round::jobs_per_s)), fjps = median(column(f, &Round::jobs_per_s));
  const double cpu = median(column(m, &Round::cpu_ms_per_job)), fcpu = median(column(f, &Round::cpu_ms_per_job));
  const double jr = ratio(m, f, &Round::jobs_per_s), cr = ratio(m, f, &Round::cpu_ms_per_job);
  std::vector<double> disp, obs;
  for (const Others& x : others) {
    disp.push_back(x.dispatcher_ms);
    obs.push_back(x.observer_ms);
  }
  std::printf("throughput: %.1f jobs/s, floor %.1f jobs/s, ratio %.2f (target >= 0.6)\n", jps, fjps, jr);
  std::printf("runner CPU: %.2f ms per job, floor %.2f ms per spawn, ratio %.2f (target <= 1.5)\n", cpu, fcpu, cr);
  std::printf("also: dispatcher %.2f ms, observer %.2f ms of CPU per job (medians of %d rounds)\n", median(disp),
              median(obs), o.repeat);
  nlohmann::json j = {{"commits", o.commits},
                      {"runners", o.runners},
                      {"slots", o.slots},
                      {"repeat", o.repeat},
                      {"jobs_per_s", rounded(jps)},
                      {"floor_jobs_per_s", rounded(fjps)},
                      {"ratio_to_floor", rounded(jr, 3)},
                      {"cpu_ms_per_job", rounded(cpu, 3)},
                      {"floor_cpu_ms_per_spawn", rounded(fcpu, 3)},
                      {"cpu_ratio_to_floor", rounded(cr, 3)},
                      {"dispatcher_cpu_ms_per_job", rounded(median(disp), 3)},
                      {"observer_cpu_ms_per_job", rounded(median(obs), 3)},
                      {"rounds_jobs_per_s", figures(m, &Round::jobs_per_s)},
                      {"rounds_floor_jobs_per_s", figures(f, &Round::jobs_per_s)},
                      {"rounds_cpu_ms_per_job", figures(m, &Round::cpu_ms_per_job)},
                      {"rounds_floor_cpu_ms_per_spawn", figures(f, &Round::cpu_ms_per_job)}};
  std::printf("%s\n", j.dump().c_str());
}

}  // namespace

int run_jobs(const JobsOptions& o) {
  TempDirGuard tmp;
  Pipeline p;
  if (!open_run(o, &tmp, &p)) return 1;
  Repo repo;
  std::printf("jobs: %d commits per push, %d runners x %d slots, %d rounds, binaries from %s\n", o.commits, o.runners,
              o.slots, o.repeat, bin_folder(o.bin).c_str());
  std::fflush(stdout);
  bool ok = make_repo(tmp.path, &repo) && start_pipeline(p, repo, o.runners, o.slots, o.poll_ms);
  std::vector<Round> measured, floors;
  std::vector<Others> others;
  for (int r = 0; ok && r < o.repeat; ++r) {
    Round f, m;
    Others x;
    ok = floor_round(repo, tmp.path, o.commits, o.runners * o.slots, &f) && pipeline_round(p, repo, o, r, &m, &x);
    if (!ok) break;
    floors.push_back(f);
    measured.push_back(m);
    others.push_back(x);
    std::printf("round %d: %.1f jobs/s (floor %.1f), runner CPU %.2f ms per job (floor %.2f per spawn)\n", r + 1,
                m.jobs_per_s, f.jobs_per_s, m.cpu_ms_per_job, f.cpu_ms_per_job);
    std::fflush(stdout);
  }
  p.stop_all();
  if (!ok) {
    tmp.keep = true;  // what went wrong is in its logs
    return 1;
  }
  report(o, measured, floors, others);
  return 0;
}

}  // namespace simpleci::bench
