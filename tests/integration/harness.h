// Test harness for integration tests: starts the real simpleCI executables as child processes
// in a temporary folder, builds real git repositories with the git command line, and waits on
// conditions with deadlines (never on a fixed sleep).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "messages/messages.h"

namespace simpleci::itest {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

// A fresh folder under $TMPDIR, removed (recursively) when the object dies unless the
// environment variable SIMPLECI_KEEP_TMP is set (handy when a test fails).
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Path of a built executable (build/bin/<name>, or $SIMPLECI_TEST_BIN_DIR/<name> when set).
std::string bin(const std::string& name);

struct RunResult {
  int exit_code = -1;  // -1 when killed by a signal or not run
  std::string output;  // stdout and stderr together
};

// Runs argv to completion (killed after timeout) and captures its output.
RunResult run(const std::vector<std::string>& argv, const fs::path& cwd = {},
              milliseconds timeout = milliseconds(30000));

// Polls pred every 10 ms until it is true or timeout passes; returns the last value of pred.
bool wait_until(const std::function<bool()>& pred, milliseconds timeout);

// A long-running child (dispatcher, runner, observer). Output goes to log_path. The child gets
// its own process group; the destructor SIGKILLs the group if it is still running.
class Process {
 public:
  Process(std::string name, std::vector<std::string> argv, fs::path log_path,
          fs::path cwd = {});
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& name() const { return name_; }
  bool running();
  void signal(int sig);
  // Sends sig and waits up to timeout for the exit; returns the exit code (-1 if killed by a
  // signal, -2 if it did not exit in time, in which case it is SIGKILLed).
  int stop(int sig = 15, milliseconds timeout = milliseconds(10000));
  std::string log() const;

 private:
  std::string name_;
  fs::path log_path_;
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
};

// A git repository driven through the git command line with a fixed identity.
class GitRepo {
 public:
  // Creates a non-bare repository with branch "main" at dir.
  static GitRepo init(const fs::path& dir);
  // Clones src into dir.
  static GitRepo clone(const fs::path& src, const fs::path& dir);
  explicit GitRepo(fs::path dir) : dir_(std::move(dir)) {}

  const fs::path& dir() const { return dir_; }
  // Writes files (relative path -> content; a name ending in ".sh" or under ".simpleci/" is made
  // executable), commits them all and returns the new commit id.
  std::string commit(const std::map<std::string, std::string>& files, const std::string& message);
  std::string git(const std::vector<std::string>& args);  // runs git; throws on failure

 private:
  fs::path dir_;
};

// Sends req on a fresh DEALER (with CURVE when both Z85 keys are given) and returns its reply
// (net::request: the one carrying req's request id, an ERROR among them), or nullopt when none
// came within timeout.
std::optional<msg::Message> ask(const std::string& endpoint, const msg::Message& req,
                                milliseconds timeout, const std::string& server_key = {},
                                const std::string& secret_key = {});

// Talks to a dispatcher like the client does: one request, one reply, with a deadline.
std::optional<msg::StatusReply> query_status(const std::string& endpoint,
                                             milliseconds timeout = milliseconds(3000));
std::optional<msg::ResultsReply> query_results(const std::string& endpoint,
                                               const std::string& commit,
                                               milliseconds timeout = milliseconds(3000));
uint64_t counter(const msg::StatusReply& s, const std::string& name);

// Reads <results_dir>/<commit>.json; nullopt while it does not exist or cannot be parsed.
std::optional<nlohmann::json> read_result(const fs::path& results_dir, const std::string& commit);

// Waits for the dispatcher to write <state_dir>/endpoint; "" on timeout.
std::string wait_for_endpoint(const fs::path& state_dir, milliseconds timeout = milliseconds(10000));

// Whole content of a file ("" when it cannot be read).
std::string read_text(const fs::path& path);

// Every process whose command line contains marker (scans /proc): for orphan checks.
std::vector<pid_t> processes_with(const std::string& marker);

}  // namespace simpleci::itest
