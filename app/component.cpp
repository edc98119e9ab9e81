#include "app/component.h"

#include <unistd.h>

#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include "common/logging.h"
#include "common/signals.h"
#include "net/transport.h"

namespace simpleci::app {

Component::Component(std::string program, const std::string& about, const std::string& log_file)
    : program_(std::move(program)), app_(about), log_dir_(kDefaultLogDir) {
  app_.add_option("--log-dir", log_dir_, "folder for " + log_file + " (default " + log_dir_ + ")");
  app_.add_option("--log-level", log_level_, "trace|debug|info|warn|error|off (default info)");
}

Component::~Component() {
  if (signal_fd_ >= 0) ::close(signal_fd_);
}

CLI::Option* Component::add_ranged(const std::string& flag, int64_t& value, const std::string& help,
                                   int64_t lo, int64_t hi) {
  return ranged_.add(app_, flag, value, help, lo, hi);
}

Stop Component::parse(int argc, char** argv, const std::function<Stop()>& check) {
  if (auto stop = cli::parse(app_, argc, argv, program_)) return stop;
  if (!ranged_.check(program_)) return cli::kUsageError;
  if (spdlog::level::from_str(log_level_) == spdlog::level::off && log_level_ != "off") {
    return fail("--log-level must be trace, debug, info, warn, error or off, got '" + log_level_ + "'",
                cli::kUsageError);
  }
  return check ? check() : std::nullopt;
}

int Component::fail(const std::string& problem, int code) const {
  return cli::fail(program_, problem, code);
}

Stop Component::start(const std::string& log_name) {
  std::string err;
  if (!setup_logging(log_name, log_dir_, log_level_, &err)) return fail(err, cli::kRuntimeError);
  signal_fd_ = make_signal_fd();
  if (signal_fd_ < 0) return fail("cannot set up signal handling", cli::kRuntimeError);
  return std::nullopt;
}

namespace {

// Sleeps until something is readable or timeout; an interrupted poll is a normal wake-up.
void poll(std::vector<zmq::pollitem_t>& items, Millis timeout) {
  try {
    zmq::poll(items.data(), items.size(), timeout);
  } catch (const zmq::error_t& e) {
    if (e.num() != EINTR) spdlog::warn("poll: {}", e.what());
  }
}

void read_messages(net::DealerConnection& conn, const PeerLoop& loop) {
  for (int n = 0; n < loop.max_messages; ++n) {
    auto m = net::recv(conn.socket(), true, 2);
    if (!m) break;
    if (m->frames.size() != 2) continue;
    loop.on_frames(std::string(net::view(m->frames[0])), std::string(net::view(m->frames[1])));
  }
}

}  // namespace

LoopEnd run_peer_loop(net::DealerConnection& conn, int signal_fd, const PeerLoop& loop) {
  while (!loop.done()) {
    std::vector<zmq::pollitem_t> items = {{conn.socket().handle(), 0, ZMQ_POLLIN, 0},
                                          {nullptr, signal_fd, ZMQ_POLLIN, 0}};
    for (int fd : loop.fds()) items.push_back({nullptr, fd, ZMQ_POLLIN, 0});
    poll(items, loop.next_wakeup());
    if ((items[1].revents & ZMQ_POLLIN) && !loop.on_signal(read_signal(signal_fd))) {
      return LoopEnd::kStopped;
    }
    for (size_t i = 2; i < items.size(); ++i) {
      if (items[i].revents & ZMQ_POLLIN) loop.on_fd(items[i].fd);
    }
    read_messages(conn, loop);
    loop.tick();
  }
  return LoopEnd::kDone;
}

}  // namespace simpleci::app
