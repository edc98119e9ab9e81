// The real pipeline that `jobs`, `latency` and `idle` start: a bare origin with a work clone
// whose test is `.simpleci/test` (`exit 0`), clones of it, and the executables found in --bin DIR
// (so an old build can be measured beside a new one).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "tools/bench/options.h"
#include "tools/bench/proc.h"

namespace simpleci::bench {

// The folder of the executables: bin_dir, or "" = the folder of this executable.
fs::path bin_folder(const std::string& bin_dir);
// The executable `name` there.
std::string exe(const std::string& bin_dir, const std::string& name);

// DIR/origin.git (bare) and DIR/work (its clone), one commit holding `.simpleci/test` on main.
struct Repo {
  fs::path origin, work;
  fs::path test() const { return work / ".simpleci" / "test"; }
};
// False after saying why on stderr.
bool make_repo(const fs::path& dir, Repo* r);
// n commits on top of HEAD of the work clone (not pushed), each changing the small file
// counter.txt to "<tag> <i>"; their ids, oldest first (empty after saying why when one failed).
std::vector<std::string> add_commits(const fs::path& work, int n, const std::string& tag);
// git clone -q origin dir.
bool clone(const fs::path& origin, const fs::path& dir);

// The processes of one run, their state, results and logs under dir. Every start_* logs to
// dir/<name>.out; stop_all() ends them (observer, runners, then dispatcher), and so does the
// destructor.
struct Pipeline {
  Pipeline() = default;
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;
  ~Pipeline() { stop_all(); }

  std::string bin_dir;  // --bin
  fs::path dir;
  std::string endpoint;  // "" until the dispatcher is up
  pid_t dispatcher = -1, observer = -1, web = -1;
  std::vector<pid_t> runners;

  fs::path results() const { return dir / "results"; }
  bool has_result(const std::string& commit) const;  // <commit>.json, the last file written
  bool start_dispatcher();
  void start_runner(const fs::path& clone, const std::string& name, int slots);
  void start_observer(const fs::path& clone, int poll_ms);
  // simpleci-web on 127.0.0.1:port; false (after saying so) when it does not answer
  // GET /api/status within 10 s.
  bool start_web(int port);
  // Runners the dispatcher lists (`simpleci status --json`); -1 when it did not answer.
  int registered_runners() const;
  // Waits until n runners are registered; false (after saying so) at the deadline.
  bool wait_runners(size_t n, std::chrono::milliseconds timeout) const;
  // Waits for the result of commit; false (after saying so) at the deadline.
  bool wait_result(const std::string& commit, std::chrono::milliseconds timeout) const;
  void stop_all();
};

// Starts the dispatcher, `runners` runners with `slots` slots (each with its own clone of
// origin) and an observer polling every poll_ms; true once every runner registered and HEAD's
// result is in.
bool start_pipeline(Pipeline& p, const Repo& repo, int runners, int slots, int poll_ms);

// Removes a run's folder when it goes out of scope, unless keep (then names it).
struct TempDirGuard {
  fs::path path;
  bool keep = false;
  ~TempDirGuard();
};

// Checks that --bin holds the four executables, creates the run's folder into tmp (kept at the
// end with --keep) and points p at it and at --bin; false after saying why.
bool open_run(const BinDir& o, TempDirGuard* tmp, Pipeline* p);

double median(const std::vector<double>& v);
// Rounded to `digits` decimals (for the JSON line).
double rounded(double v, int digits = 2);

}  // namespace simpleci::bench
