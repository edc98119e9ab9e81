// Command-line helpers shared by every executable (header-only; CLI11 is header-only too):
// one-line errors in the form "<program>: <problem>", exit 2 for usage errors.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

namespace simpleci::cli {

inline constexpr int kUsageError = 2;
inline constexpr int kRuntimeError = 1;

// Parses argv; on --help prints help and returns 0 through *exit_code; on a bad flag prints one
// line and sets *exit_code to 2. Returns true when the program should go on.
inline bool parse(CLI::App& app, int argc, char** argv, const std::string& program,
                  int* exit_code) {
  try {
    app.parse(argc, argv);
    return true;
  } catch (const CLI::CallForHelp& e) {
    *exit_code = app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    *exit_code = app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string what = e.what();
    for (char& c : what) {
      if (c == '\n') c = ' ';
    }
    std::fprintf(stderr, "%s: %s\n", program.c_str(), what.c_str());
    *exit_code = kUsageError;
  }
  return false;
}

// Prints "<program>: <flag> must be between lo and hi, got v" and returns false when out of range.
inline bool in_range(const std::string& program, const std::string& flag, int64_t v, int64_t lo,
                     int64_t hi) {
  if (v >= lo && v <= hi) return true;
  std::fprintf(stderr, "%s: %s must be between %lld and %lld, got %lld\n", program.c_str(),
               flag.c_str(), static_cast<long long>(lo), static_cast<long long>(hi),
               static_cast<long long>(v));
  return false;
}

inline int fail(const std::string& program, const std::string& problem, int code) {
  std::fprintf(stderr, "%s: %s\n", program.c_str(), problem.c_str());
  return code;
}

}  // namespace simpleci::cli
