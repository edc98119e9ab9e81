// `simpleci-bench checkout`: the runner's checkout (libgit2) beside git itself.
#pragma once

#include <cstddef>
#include <string>

namespace simpleci::bench {

struct CheckoutOptions {
  size_t files = 2000;
  size_t file_bytes = 2048;
  int commits = 20;
  std::string work_dir;  // "" = $TMPDIR or /tmp
  bool keep = false;
};

int run_checkout(const CheckoutOptions& o);

}  // namespace simpleci::bench
