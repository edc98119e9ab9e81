// Runs a shell command for test set-up (making git repositories) and returns its output
// without the trailing newline.
#pragma once

#include <cstdio>
#include <string>

namespace simpleci::testing {

inline std::string sh(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  char buf[256];
  while (p && std::fgets(buf, sizeof buf, p)) out += buf;
  if (p) ::pclose(p);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace simpleci::testing
