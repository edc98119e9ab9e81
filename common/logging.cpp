#include "common/logging.h"

#include <filesystem>
#include <vector>

#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

namespace simpleci {

bool setup_logging(const std::string& component, const std::string& log_dir,
                   const std::string& level, std::string* err) {
  const auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") {
    *err = component + ": --log-level must be trace, debug, info, warn, error or off, got '" +
           level + "'";
    return false;
  }
  std::vector<spdlog::sink_ptr> sinks;
  sinks.push_back(std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  if (!log_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(log_dir, ec);
    if (ec) {
      *err = component + ": cannot create --log-dir '" + log_dir + "': " + ec.message();
      return false;
    }
    try {
      sinks.push_back(std::make_shared<spdlog::sinks::rotating_file_sink_mt>(
          (std::filesystem::path(log_dir) / (component + ".log")).string(), 10 * 1024 * 1024, 3));
    } catch (const spdlog::spdlog_ex& e) {
      *err = component + ": cannot open log file in '" + log_dir + "': " + e.what();
      return false;
    }
  }
  auto logger = std::make_shared<spdlog::logger>(component, sinks.begin(), sinks.end());
  logger->set_level(lvl);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v");
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  return true;
}

bool LogLimiter::allow(std::chrono::steady_clock::time_point now, uint64_t* suppressed) {
  if (now - window_start_ >= window_) {
    window_start_ = now;
    used_ = 0;
  }
  if (used_ >= burst_) {
    ++held_;
    return false;
  }
  ++used_;
  *suppressed = held_;
  held_ = 0;
  return true;
}

std::string LogLimiter::held_back(uint64_t suppressed) {
  return suppressed ? " [" + std::to_string(suppressed) + " similar lines held back]" : "";
}

}  // namespace simpleci
