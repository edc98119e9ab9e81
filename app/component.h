// The skeleton every long-running executable (dispatcher, runner, observer) shares: its flags
// with their ranges and --log-dir / --log-level, then logging and the signal fd; and, for the
// dispatcher's peers, the poll loop.
//
//   app::Component c("simpleci-observer", "simpleCI observer: ...", "observer.log");
//   c.add_ranged("--poll-ms", poll_ms, "how often to fetch origin", msg::kMinPollMs, msg::kMaxPollMs);
//   if (auto stop = c.parse(argc, argv, check)) return *stop;  // usage errors: 2
//   ...                                                     // runtime checks: c.fail(..., 1)
//   if (auto stop = c.start("observer")) return *stop;      // log folder, signals: 1
//   app::run_peer_loop(conn, c.signal_fd(), app::loop_of(observer, on_signal));
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "app/cli.h"
#include "common/clock.h"
#include "net/dealer.h"

namespace simpleci::app {

using cli::Stop;

class Component {
 public:
  // program: the name every error line starts with; about: the first line of --help;
  // log_file: the file --log-dir's help names ("runner-NAME.log").
  Component(std::string program, const std::string& about, const std::string& log_file);
  ~Component();
  Component(const Component&) = delete;
  Component& operator=(const Component&) = delete;

  CLI::App& flags() { return app_; }
  const std::string& program() const { return program_; }

  // An integer flag whose help ends in "(lo..hi)" and whose value parse() checks.
  CLI::Option* add_ranged(const std::string& flag, int64_t& value, const std::string& help,
                          int64_t lo, int64_t hi);

  // Parses argv, then checks every ranged flag (in the order they were added), --log-level, and
  // last the component's own usage checks (`check`, e.g. flags that go together). Stops with 0
  // after --help, with 2 after one line for the first usage error (or what check stops with).
  Stop parse(int argc, char** argv, const std::function<Stop()>& check = {});

  // Prints "<program>: <problem>" and returns code.
  int fail(const std::string& problem, int code) const;

  // Logs to stderr and <log-dir>/<log_name>.log, then blocks SIGINT/SIGTERM/SIGHUP into a
  // signal fd (call it before starting threads). Stops with 1 when the log folder cannot be
  // created or written, or signals cannot be set up.
  Stop start(const std::string& log_name);

  // Readable when a signal arrived (read it with read_signal); -1 before start(). Closed by the
  // destructor.
  int signal_fd() const { return signal_fd_; }

 private:
  std::string program_;
  CLI::App app_;
  std::string log_dir_, log_level_ = "info";
  cli::RangedFlags ranged_;
  int signal_fd_ = -1;
};

// What the loop of a dispatcher's peer asks of the component it drives.
struct PeerLoop {
  std::function<Millis()> next_wakeup;  // how long the loop may sleep
  std::function<void(const std::string& header, const std::string& body)> on_frames;
  std::function<void()> tick;  // after every wake-up
  // A signal arrived (its number): true to keep looping (e.g. draining), false to stop now.
  std::function<bool(int sig)> on_signal;
  std::function<bool()> done = [] { return false; };
  // More fds to wake up for, asked before every sleep, and what to do when one is readable.
  std::function<std::vector<int>()> fds = [] { return std::vector<int>{}; };
  std::function<void(int fd)> on_fd = [](int) {};
  // Messages read per wake-up before tick(), so a flood cannot hold off the timers.
  int max_messages = 256;
};

// The PeerLoop of a component with next_wakeup(), on_frames(header, body) and tick() (the
// runner's and the observer's logic); the caller adds done, fds and on_fd as it needs.
template <class Logic>
PeerLoop loop_of(Logic& logic, std::function<bool(int)> on_signal) {
  PeerLoop l;
  l.next_wakeup = [&logic] { return logic.next_wakeup(); };
  l.on_frames = [&logic](const std::string& h, const std::string& b) { logic.on_frames(h, b); };
  l.tick = [&logic] { logic.tick(); };
  l.on_signal = std::move(on_signal);
  return l;
}

enum class LoopEnd { kDone, kStopped };

// Until loop.done() (kDone) or on_signal says stop (kStopped): sleeps in zmq::poll on the
// connection, the signal fd and loop.fds() for at most next_wakeup(), then handles a signal,
// the readable fds, up to max_messages two-frame messages, and ticks.
LoopEnd run_peer_loop(net::DealerConnection& conn, int signal_fd, const PeerLoop& loop);

}  // namespace simpleci::app
