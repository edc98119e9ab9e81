// A whole simpleCI installation in one temporary folder, for integration tests: an upstream git
// repository, and the real dispatcher, runners and observer started as processes on loopback
// with an OS-chosen port.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/integration/harness.h"

namespace simpleci::itest {

// A .simpleci/test script that prints a line and exits with code.
std::string script(int exit_code, const std::string& extra = "");

class Cluster {
 public:
  explicit Cluster(int heartbeat_ms = 200);
  ~Cluster();

  const fs::path& root() const { return tmp_.path(); }
  GitRepo& upstream() { return upstream_; }
  const fs::path& results_dir() const { return results_; }
  const fs::path& state_dir() const { return state_; }
  const std::string& endpoint() const { return endpoint_; }
  int heartbeat_ms() const { return heartbeat_ms_; }

  // Starts the dispatcher on bind (default: loopback, OS-chosen port) and waits for its
  // endpoint file. Returns false (with the log in *why) if it did not come up.
  bool start_dispatcher(const std::string& bind = "tcp://127.0.0.1:0",
                        const std::vector<std::string>& extra = {});
  Process& dispatcher() { return *dispatcher_; }
  // A runner with its own clone at <root>/clones/<name>.
  Process& start_runner(const std::string& name, int jobs = 1,
                        const std::vector<std::string>& extra = {});
  Process& runner(const std::string& name) { return *runners_.at(name); }
  void forget_runner(const std::string& name) { runners_.erase(name); }
  Process& start_observer(int poll_ms = 100, const std::vector<std::string>& extra = {});
  Process& observer() { return *observer_; }

  // Waits until <commit>.json exists with a final status and returns it.
  std::optional<nlohmann::json> wait_result(const std::string& commit,
                                            milliseconds timeout = milliseconds(30000));
  // Every component's log, for failure messages.
  std::string logs() const;

 private:
  TempDir tmp_;
  int heartbeat_ms_;
  fs::path state_, results_, logdir_;
  GitRepo upstream_;
  std::string endpoint_;
  std::unique_ptr<Process> dispatcher_;
  std::map<std::string, std::unique_ptr<Process>> runners_;
  std::unique_ptr<Process> observer_;
};

}  // namespace simpleci::itest
