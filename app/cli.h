// Command-line helpers shared by every executable: one-line errors in the form
// "<program>: <problem>", the exit codes, integer flags with a range, and the flags a peer of the
// dispatcher takes to reach it.
//
// Exit codes (docs/CLI.md): 0 success (and --help); 2 a usage error, found before anything is
// done (an unknown flag, a value out of range, flags that go together given alone); 1 a runtime
// failure (a folder that cannot be created or written, an address in use, an unreadable key, no
// answer from the dispatcher). `simpleci watch` adds 3 for a job that did not pass.
#pragma once

#include <cstdint>
#include <optional>
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace simpleci::cli {

inline constexpr int kUsageError = 2;
inline constexpr int kRuntimeError = 1;

// An exit code when the program must stop now (its one line already printed); nullopt: go on.
using Stop = std::optional<int>;

// Prints "<program>: <problem>" on stderr and returns code.
int fail(const std::string& program, const std::string& problem, int code);

// Parses argv. Stops with 0 after --help (printed), with 2 after one line for a bad flag.
Stop parse(CLI::App& app, int argc, char** argv, const std::string& program);
// The same in the older spelling (simpleci-bench): true to go on, else *exit_code is set.
bool parse(CLI::App& app, int argc, char** argv, const std::string& program, int* exit_code);

// Runs body(argc, argv) and turns an exception that escaped it (out of memory, too many open
// files for a socket, ...) into one line "<program>: <what>" and exit code 1, instead of an
// abort with a core dump.
int guarded_main(const char* program, int (*body)(int, char**), int argc, char** argv);

// Prints "<program>: <flag> must be between lo and hi, got v" and returns false when out of range.
bool in_range(const std::string& program, const std::string& flag, int64_t v, int64_t lo,
              int64_t hi);

// help + " (lo..hi)": the range a help line shows, from the same constants the check uses.
std::string with_range(const std::string& help, int64_t lo, int64_t hi);

// Numeric flags whose range is stated once, in the help line and in the check made after parsing
// (Component's and every simpleci-bench subcommand's). Keeps references: value must outlive it.
class RangedFlags {
 public:
  template <class T>
  CLI::Option* add(CLI::App& app, const std::string& flag, T& value, const std::string& help,
                   int64_t lo, int64_t hi) {
    checks_.push_back([&value, flag, lo, hi](const std::string& program) {
      return in_range(program, flag, static_cast<int64_t>(value), lo, hi);
    });
    return app.add_option(flag, value, with_range(help, lo, hi));
  }
  // True when every flag is within its range; else one line for the first that is not (in the
  // order they were added).
  bool check(const std::string& program) const;

 private:
  std::vector<std::function<bool(const std::string&)>> checks_;
};

// A test command (--test-command of the dispatcher and the runner): 1..kMaxCommandLen bytes
// without NUL, else one line and 2.
Stop check_test_command(const std::string& program, const std::string& command);

// Where a peer of the dispatcher connects, and with CURVE the two Z85 keys (both empty without).
struct Dispatcher {
  std::string endpoint, server_key, secret_key;
  bool curve() const { return !server_key.empty(); }
};

// The flags every peer of the dispatcher takes to reach it: --dispatcher / --dispatcher-server
// and the CURVE key pair.
struct ConnectFlags {
  std::string dispatcher, dispatcher_server, server_key_file, secret_key_file;

  // who: whose secret key --curve-secret-key holds, for its help line ("this runner").
  void add(CLI::App& app, const std::string& who);
  // Fills *out: the endpoint and, with CURVE, both keys. Stops with 2 for bad flags, 1 for a key
  // file that cannot be read or is not private.
  Stop resolve(const std::string& program, Dispatcher* out) const;
};

}  // namespace simpleci::cli
