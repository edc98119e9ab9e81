// `simpleci-bench soak`: does the memory of a long-running component stay flat?
#pragma once

#include <string>

namespace simpleci::bench {

struct SoakOptions {
  std::string component = "both";  // observer, runner or both
  int count = 10000;               // observer polls / runner jobs
  int poll_ms = 10;                // the observer's --poll-ms
  std::string work_dir;
  bool keep = false;
};

// Drives the real observer through `count` polls of its origin and the real runner through
// `count` jobs (each for a commit its clone has to fetch), with the benchmark itself playing
// the dispatcher (a ROUTER on loopback). Samples VmRSS from /proc/PID/status and prints, per
// component, RSS after the first tenth (the start: allocators and caches warmed up), at the
// end and at its peak, and the growth per 1,000 iterations; the last line is JSON with
// <component>_rss_start_kb, _rss_end_kb, _rss_peak_kb, _growth_kb_per_1000 and _iterations.
int run_soak(const SoakOptions& o);

}  // namespace simpleci::bench
