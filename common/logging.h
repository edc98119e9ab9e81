// One log per component: stderr plus a rotating file <log_dir>/<component>.log.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <spdlog/spdlog.h>

namespace simpleci {

inline constexpr const char* kDefaultLogDir = "simpleci-logs";

// Installs the default spdlog logger for this process. level is one of trace, debug, info,
// warn, error, off. Returns false and fills *err (one line) when the level is unknown or the
// folder cannot be created or written. log_dir "" logs to stderr only.
bool setup_logging(const std::string& component, const std::string& log_dir,
                   const std::string& level, std::string* err);

// Lets through at most `burst` log lines per `window`; counts what it holds back so the next
// line that passes can say how many were suppressed. For input a peer controls (garbage frames),
// so a flood cannot fill the disk with log lines. Not thread-safe.
class LogLimiter {
 public:
  explicit LogLimiter(int burst = 10, std::chrono::milliseconds window = std::chrono::seconds(1))
      : burst_(burst), window_(window) {}
  // True when a line may be written now; *suppressed receives how many were held back since the
  // last line that passed (then resets). The caller reports that count in the line it writes
  // (held_back() words it), or the lines held back go unmentioned.
  bool allow(std::chrono::steady_clock::time_point now, uint64_t* suppressed);
  // " [N similar lines held back]" for a count above 0, "" for 0: the tail of the line allowed.
  static std::string held_back(uint64_t suppressed);

 private:
  int burst_;
  std::chrono::milliseconds window_;
  std::chrono::steady_clock::time_point window_start_{};
  int used_ = 0;
  uint64_t held_ = 0;
};

}  // namespace simpleci
