#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace simpleci::bench {

struct DispatchOptions {
  int runners = 8;
  size_t jobs = 20000;
  size_t window = 256;
  int timeout_s = 300;
  std::string dispatcher_bin;
  std::vector<std::string> dispatcher_args;  // added to the dispatcher's command line
  std::string work_dir;  // "" = $TMPDIR or /tmp
  bool keep = false;
};
int run_dispatch(const DispatchOptions& o);

struct E2eOptions {
  int commits = 20;
  int poll_ms = 200;
  std::string work_dir;
  bool keep = false;
};
int run_e2e(const E2eOptions& o);

struct FloodOptions {
  size_t queued = 50000;    // queued jobs in the store before the dispatcher starts
  size_t finished = 0;      // finished jobs in the store
  size_t requests = 4000;   // requests in each flood
  int samples = 20;         // COMMITs timed, one per flood
  bool results = false;     // flood with RESULTS (limit 1000) instead of STATUS
  std::string dispatcher_bin;
  std::string work_dir;
  bool keep = false;
};
int run_flood(const FloodOptions& o);

}  // namespace simpleci::bench
