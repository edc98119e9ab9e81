#include "tests/integration/cluster.h"

#include <fstream>
#include <sstream>

namespace simpleci::itest {

std::string script(int exit_code, const std::string& extra) {
  return "#!/bin/sh\necho \"simpleci test of $SIMPLECI_COMMIT on $SIMPLECI_BRANCH\"\n" + extra +
         "\nexit " + std::to_string(exit_code) + "\n";
}

Cluster::Cluster(int heartbeat_ms)
    : heartbeat_ms_(heartbeat_ms),
      state_(tmp_.path() / "state"),
      results_(tmp_.path() / "test_results"),
      logdir_(tmp_.path() / "logs"),
      upstream_(GitRepo::init(tmp_.path() / "upstream")) {
  fs::create_directories(logdir_);
  fs::create_directories(tmp_.path() / "clones");
  upstream_.commit({{".simpleci/test", script(0)}, {"README", "demo\n"}}, "first");
}

Cluster::~Cluster() {
  // Observer and runners first, so nothing reconnects to a dying dispatcher.
  if (observer_) observer_->stop(15, milliseconds(5000));
  for (auto& [name, r] : runners_) r->stop(9, milliseconds(5000));
  if (dispatcher_) dispatcher_->stop(15, milliseconds(5000));
}

bool Cluster::start_dispatcher(const std::string& bind, const std::vector<std::string>& extra) {
  std::error_code ec;
  fs::remove(state_ / "endpoint", ec);
  std::vector<std::string> argv = {bin("simpleci-dispatcher"), "--bind", bind,
                                   "--state-dir", state_.string(), "--results-dir",
                                   results_.string(), "--log-dir", logdir_.string(),
                                   "--heartbeat-ms", std::to_string(heartbeat_ms_)};
  argv.insert(argv.end(), extra.begin(), extra.end());
  dispatcher_ = std::make_unique<Process>("dispatcher", argv, tmp_.path() / "dispatcher.out");
  endpoint_ = wait_for_endpoint(state_);
  return !endpoint_.empty() && dispatcher_->running();
}

Process& Cluster::start_runner(const std::string& name, int jobs,
                               const std::vector<std::string>& extra) {
  fs::path clone = tmp_.path() / "clones" / name;
  if (!fs::exists(clone)) GitRepo::clone(upstream_.dir(), clone);
  std::vector<std::string> argv = {bin("simpleci-runner"), "--dispatcher", endpoint_,
                                   "--name", name, "--jobs", std::to_string(jobs),
                                   "--log-dir", logdir_.string(), "--kill-grace-ms", "1000"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back(clone.string());
  runners_[name] = std::make_unique<Process>("runner-" + name, argv,
                                             tmp_.path() / ("runner-" + name + ".out"));
  return *runners_[name];
}

Process& Cluster::start_observer(int poll_ms, const std::vector<std::string>& extra) {
  fs::path clone = tmp_.path() / "clones" / "observer";
  if (!fs::exists(clone)) GitRepo::clone(upstream_.dir(), clone);
  std::vector<std::string> argv = {bin("simpleci-observer"), "--dispatcher", endpoint_,
                                   "--poll-ms", std::to_string(poll_ms), "--log-dir",
                                   logdir_.string()};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back(clone.string());
  observer_ = std::make_unique<Process>("observer", argv, tmp_.path() / "observer.out");
  return *observer_;
}

std::optional<nlohmann::json> Cluster::wait_result(const std::string& commit,
                                                   milliseconds timeout) {
  std::optional<nlohmann::json> j;
  wait_until(
      [&] {
        j = read_result(results_, commit);
        return j.has_value();
      },
      timeout);
  return j;
}

std::string Cluster::logs() const {
  std::ostringstream out;
  for (const auto& e : fs::directory_iterator(tmp_.path())) {
    if (e.path().extension() != ".out") continue;
    std::string text = read_text(e.path());
    if (text.size() > 6000) text = "...\n" + text.substr(text.size() - 6000);
    out << "----- " << e.path().filename().string() << " -----\n" << text << "\n";
  }
  return out.str();
}

}  // namespace simpleci::itest
