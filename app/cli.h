// Command-line helpers shared by every executable (header-only; CLI11 is header-only too):
// one-line errors in the form "<program>: <problem>", exit 2 for usage errors.
#pragma once

#include <cstdint>
#include <cstdio>
#include <exception>
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

// Runs body(argc, argv) and turns an exception that escaped it (out of memory, too many open
// files for a socket, ...) into one line "<program>: <what>" and exit code 1, instead of an
// abort with a core dump.
inline int guarded_main(const char* program, int (*body)(int, char**), int argc, char** argv) {
  try {
    return body(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
  } catch (...) {
    std::fprintf(stderr, "%s: unexpected error\n", program);
  }
  return kRuntimeError;
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

#include "net/curve.h"
#include "net/endpoint.h"

namespace simpleci::cli {

// The flags every peer of the dispatcher takes to reach it: --dispatcher / --dispatcher-server
// and the CURVE key pair.
struct ConnectFlags {
  std::string dispatcher, dispatcher_server, server_key_file, secret_key_file;

  void add(CLI::App& app, const std::string& who) {
    app.add_option("--dispatcher", dispatcher, "dispatcher endpoint tcp://HOST:PORT or ipc://PATH");
    app.add_option("--dispatcher-server", dispatcher_server, "dispatcher as HOST:PORT (original spelling)");
    app.add_option("--curve-server-key", server_key_file, "dispatcher's public key file (CURVE)");
    app.add_option("--curve-secret-key", secret_key_file, who + "'s secret key file (CURVE)");
  }

  // Fills the endpoint and, with CURVE, both keys. On a problem prints one line and returns
  // false with *code set (2 for bad flags, 1 for unreadable key files).
  bool resolve(const std::string& program, std::string* endpoint, std::string* server_key,
               std::string* secret_key, int* code) const {
    std::string err;
    *endpoint = resolve_dispatcher(dispatcher, dispatcher_server, &err);
    if (endpoint->empty()) {
      *code = fail(program, err, kUsageError);
      return false;
    }
    if (server_key_file.empty() != secret_key_file.empty()) {
      *code = fail(program, "--curve-server-key and --curve-secret-key go together", kUsageError);
      return false;
    }
    if (!server_key_file.empty() && (!curve::load_key(server_key_file, server_key, &err) ||
                                     !curve::load_secret_key(secret_key_file, secret_key, &err))) {
      *code = fail(program, err, kRuntimeError);
      return false;
    }
    return true;
  }
};

}  // namespace simpleci::cli
