// Small process and file helpers for the benchmarks.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace simpleci::bench {

namespace fs = std::filesystem;

// Folder of this executable (the other simpleCI executables sit beside it).
fs::path self_dir();
// Starts argv with stdout/stderr appended to log; returns its pid (-1 on failure).
pid_t start(const std::vector<std::string>& argv, const fs::path& log);
// Runs argv to completion; returns its exit code (-1 if it could not run or was killed).
int run(const std::vector<std::string>& argv, std::string* output = nullptr);
// SIGTERM, then SIGKILL after timeout.
void stop(pid_t pid, std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));
bool wait_for(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
              std::chrono::milliseconds step = std::chrono::milliseconds(2));
// Waits for <state_dir>/endpoint; "" on timeout.
std::string read_endpoint(const fs::path& state_dir);
// Starts the dispatcher (`bin`, or simpleci-dispatcher beside this executable) on loopback with
// its state, results and logs under dir (dir/state may already hold a store) and waits for its
// endpoint. "" (after saying why on stderr and stopping it) when it did not start.
std::string start_dispatcher(const fs::path& dir, const std::string& bin, pid_t* pid,
                             const std::vector<std::string>& extra = {});
// Resident set (VmRSS) and peak (VmHWM) of pid, in KiB.
void memory_kb(pid_t pid, long* rss, long* hwm);
// The same and the resident set's anonymous (RssAnon) and file-backed (RssFile) parts, in KiB.
struct Memory {
  long rss_kb = 0, hwm_kb = 0, anon_kb = 0, file_kb = 0;
};
Memory memory(pid_t pid);
// User + system CPU time of pid, in clock ticks.
long cpu_ticks(pid_t pid);
// The same plus that of the children pid has waited for (cutime + cstime), in clock ticks.
long cpu_ticks_with_children(pid_t pid);
// Clock ticks in milliseconds.
double ticks_ms(long ticks);
// CPU time of every thread of pid so far, in ns, from /proc/PID/task/*/schedstat (exact where
// ticks are sampled; 0 when the kernel has no schedstat).
double cpu_ns(pid_t pid);
// User + system CPU time of the children this process has waited for, in ms (RUSAGE_CHILDREN).
double children_cpu_ms();
// A new folder under base (default $TMPDIR or /tmp).
fs::path make_temp_dir(const std::string& base = "");
double percentile(std::vector<double> v, double p);

// argv for `git -C dir ARGS...` with a fixed identity (for commits made by the benchmarks).
std::vector<std::string> git_argv(const fs::path& dir, std::vector<std::string> args);
// The commit id HEAD names in dir ("" when it cannot be read).
std::string git_head(const fs::path& dir);

}  // namespace simpleci::bench
