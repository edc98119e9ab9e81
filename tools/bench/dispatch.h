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

}  // namespace simpleci::bench
