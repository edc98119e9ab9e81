// `simpleci-bench checkout`: what a runner pays per job to put a commit in its clone — the real
// runner code (GitWorkspace::prepare: forced checkout with untracked files removed, libgit2) —
// beside `git checkout -f --detach` + `git clean -fd` on an identical clone (the reference).
//
// The repository is generated: --files files of --file-bytes bytes in 20 folders, and --commits
// commits each changing 5 % of the files, adding two and deleting one. Both clones visit the same
// commits in the same order: forward one by one (a runner following a branch), then jumps in a
// scrambled order (a runner given old and new commits). Before every checkout both get the same
// untracked files, as a test's build output would leave them.
#include "tools/bench/options.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>

#include <git2.h>
#include <nlohmann/json.hpp>

#include "runner/workspace.h"
#include "tools/bench/proc.h"

namespace simpleci::bench {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::string random_text(std::mt19937_64& rng, size_t bytes) {
  static constexpr char kChars[] = "abcdefghijklmnopqrstuvwxyz0123456789 \n";
  std::string s(bytes, ' ');
  for (char& ch : s) ch = kChars[rng() % (sizeof kChars - 1)];
  return s;
}

fs::path file_path(const fs::path& root, size_t i) {
  return root / ("dir" + std::to_string(i % 20)) / ("file" + std::to_string(i) + ".txt");
}

void write(const fs::path& p, const std::string& data) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << data;
}

// Leaves what a test run would: new files the commit does not have.
void litter(const fs::path& clone, int round) {
  for (int k = 0; k < 10; ++k) {
    write(clone / "build" / ("out" + std::to_string(round) + "_" + std::to_string(k) + ".o"), "object\n");
  }
}

// Generates the repository at up: its commits, oldest first (empty, after saying why, when git
// failed).
std::vector<std::string> make_history(const fs::path& up, const CheckoutOptions& o, std::mt19937_64& rng) {
  run(git_argv(up.parent_path(), {"init", "-q", "-b", "main", up.string()}));
  size_t next_file = 0;
  std::vector<size_t> live;
  for (; next_file < o.files; ++next_file) {
    write(file_path(up, next_file), random_text(rng, o.file_bytes));
    live.push_back(next_file);
  }
  std::vector<std::string> commits;
  for (int c = 0; c < o.commits; ++c) {
    if (c > 0) {
      for (size_t k = 0; k < std::max<size_t>(1, live.size() / 20); ++k) {
        write(file_path(up, live[rng() % live.size()]), random_text(rng, o.file_bytes));
      }
      for (int k = 0; k < 2; ++k, ++next_file) {
        write(file_path(up, next_file), random_text(rng, o.file_bytes));
        live.push_back(next_file);
      }
      size_t gone = rng() % live.size();
      fs::remove(file_path(up, live[gone]));
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(gone));
    }
    if (run(git_argv(up, {"add", "-A"})) != 0 ||
        run(git_argv(up, {"commit", "-q", "-m", "commit " + std::to_string(c)})) != 0) {
      std::fprintf(stderr, "simpleci-bench: cannot make the test repository in %s\n", up.c_str());
      return {};
    }
    commits.push_back(git_head(up));
  }
  return commits;
}

// Checks out every commit of order in both clones (a with the runner's code, b with git), after
// littering both; the times in ms. False, after saying why, when a checkout failed.
bool time_checkouts(const fs::path& a, const fs::path& b, const std::string& first,
                    const std::vector<std::string>& order, std::vector<double>* lib_ms,
                    std::vector<double>* git_ms) {
  runner::GitWorkspace ws(a.string());
  std::string workdir, err;
  if (ws.prepare(0, first, "", &workdir, &err) != runner::Prepared::kReady ||
      run(git_argv(b, {"checkout", "-q", "-f", "--detach", first})) != 0) {
    std::fprintf(stderr, "simpleci-bench: first checkout failed: %s\n", err.c_str());
    return false;
  }
  int round = 0;
  for (const std::string& c : order) {
    ++round;
    litter(a, round);
    litter(b, round);
    auto t0 = Clock::now();
    if (ws.prepare(0, c, "", &workdir, &err) != runner::Prepared::kReady) {
      std::fprintf(stderr, "simpleci-bench: libgit2 checkout of %s failed: %s\n", c.c_str(), err.c_str());
      return false;
    }
    lib_ms->push_back(ms_since(t0));
    t0 = Clock::now();
    if (run(git_argv(b, {"checkout", "-q", "-f", "--detach", c})) != 0 || run(git_argv(b, {"clean", "-q", "-fd"})) != 0) {
      std::fprintf(stderr, "simpleci-bench: git checkout of %s failed\n", c.c_str());
      return false;
    }
    git_ms->push_back(ms_since(t0));
  }
  return true;
}

void print_figures(const CheckoutOptions& o, size_t checkouts, const std::vector<double>& lib_ms,
                   const std::vector<double>& git_ms) {
  const double lib50 = percentile(lib_ms, 50), git50 = percentile(git_ms, 50);
  std::printf("libgit2 (runner's code): p50 %.2f ms, p99 %.2f ms per checkout\n", lib50, percentile(lib_ms, 99));
  std::printf("git checkout + clean:    p50 %.2f ms, p99 %.2f ms per checkout\n", git50, percentile(git_ms, 99));
  nlohmann::json j = {{"files", o.files},
                      {"commits", o.commits},
                      {"checkouts", checkouts},
                      {"libgit2_p50_ms", std::round(lib50 * 100) / 100},
                      {"libgit2_p99_ms", std::round(percentile(lib_ms, 99) * 100) / 100},
                      {"git_p50_ms", std::round(git50 * 100) / 100},
                      {"git_p99_ms", std::round(percentile(git_ms, 99) * 100) / 100},
                      {"ratio_to_git", git50 > 0 ? std::round(lib50 / git50 * 1000) / 1000 : 0.0}};
  std::printf("%s\n", j.dump().c_str());
}

}  // namespace

int run_checkout(const CheckoutOptions& o) {
  fs::path tmp = make_temp_dir(o.work_dir);
  fs::path up = tmp / "upstream", a = tmp / "clone-libgit2", b = tmp / "clone-git";
  std::mt19937_64 rng(4242);
  const std::vector<std::string> commits = make_history(up, o, rng);
  if (commits.empty()) return 1;
  if (run({"git", "clone", "-q", up.string(), a.string()}) != 0 ||
      run({"git", "clone", "-q", up.string(), b.string()}) != 0) {
    std::fprintf(stderr, "simpleci-bench: cannot clone %s\n", up.c_str());
    return 1;
  }
  std::printf("checkout: %zu files of %zu bytes, %d commits, in %s\n", o.files, o.file_bytes,
              o.commits, tmp.c_str());

  // Forward one by one, then scrambled jumps; both clones start at the first commit.
  std::vector<std::string> order(commits.begin() + 1, commits.end());
  std::vector<std::string> jumps = commits;
  std::shuffle(jumps.begin(), jumps.end(), rng);
  order.insert(order.end(), jumps.begin(), jumps.end());

  git_libgit2_init();
  std::vector<double> lib_ms, git_ms;
  if (!time_checkouts(a, b, commits[0], order, &lib_ms, &git_ms)) return 1;
  // Both must have ended in the same, clean state: the figures compare equal work.
  std::string status_a, status_b;
  run(git_argv(a, {"status", "--porcelain"}), &status_a);
  run(git_argv(b, {"status", "--porcelain"}), &status_b);
  const bool same = git_head(a) == order.back() && git_head(b) == order.back() && status_a.empty() &&
                    status_b.empty();
  git_libgit2_shutdown();
  if (!o.keep) fs::remove_all(tmp);
  if (!same) {
    std::fprintf(stderr, "simpleci-bench: the clones disagree at the end (libgit2: '%s', git: '%s')\n",
                 status_a.c_str(), status_b.c_str());
    return 1;
  }
  print_figures(o, order.size(), lib_ms, git_ms);
  return 0;
}

}  // namespace simpleci::bench
