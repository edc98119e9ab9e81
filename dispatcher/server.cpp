#include "dispatcher/server.h"

#include <algorithm>
#include <cstdio>
#include <csignal>
#include <map>
#include <memory>
#include <set>

#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include "messages/curve.h"
#include "messages/fsutil.h"
#include "messages/signals.h"
#include "messages/transport.h"

namespace simpleci::dispatcher {

namespace {

constexpr const char* kProgram = "simpleci-dispatcher";
constexpr const char* kMonitorEndpoint = "inproc://simpleci-dispatcher-monitor";
constexpr int kBatch = 4096;  // messages read per round before one group commit
constexpr size_t kMaxWriterBacklog = 20000;  // result files waiting for the writer thread
constexpr size_t kMaxUnwrittenBytes = 256u << 20;  // and the output bytes they hold
constexpr size_t kMaxRoundBytes = 16u << 20;  // output in one commit (and its WAL flush)

int fail(const std::string& what) {
  std::fprintf(stderr, "%s: %s\n", kProgram, what.c_str());
  return 1;
}

class RouterOutbox final : public Outbox {
 public:
  explicit RouterOutbox(zmq::socket_t& s) : s_(s) {}
  bool send(std::string_view peer, const msg::Message& m) override {
    return net::send_to(s_, peer, m);
  }

 private:
  zmq::socket_t& s_;
};

// Reads every pending monitor event; returns the fds of closed connections.
std::vector<int> closed_connections(zmq::socket_t& mon) {
  std::vector<int> fds;
  while (true) {
    zmq::message_t ev, addr;
    if (!mon.recv(ev, zmq::recv_flags::dontwait)) break;
    if (ev.more()) (void)mon.recv(addr, zmq::recv_flags::dontwait);
    if (ev.size() < 6) continue;
    uint16_t event;
    int32_t value;
    std::memcpy(&event, ev.data(), 2);
    std::memcpy(&value, static_cast<const char*>(ev.data()) + 2, 4);
    if (event == ZMQ_EVENT_DISCONNECTED) fds.push_back(value);
  }
  return fds;
}

std::set<std::string, std::less<>> names_of(const std::map<std::string, std::string>& key_to_name) {
  std::set<std::string, std::less<>> names;
  for (const auto& [key, name] : key_to_name) names.insert(name);
  return names;
}

// SIGHUP: reads the authorised-keys folder again. New connections are checked against the new
// list at once; peers whose key is gone are refused from their next message on. A folder that
// cannot be read (or holds a bad key) leaves the current list in force.
void reload_keys(const ServerOptions& opt, curve::ZapHandler* zap, Dispatcher& core) {
  if (!zap) {
    spdlog::info("SIGHUP: no authorised keys to reload (CURVE is off)");
    return;
  }
  std::map<std::string, std::string> keys;
  std::string err;
  if (!curve::load_authorized_keys(opt.authorized_keys_dir, &keys, &err)) {
    spdlog::error("SIGHUP: keeping the current authorised keys: {}", err);
    return;
  }
  spdlog::info("SIGHUP: {} authorised key(s) in {}", keys.size(), opt.authorized_keys_dir);
  core.set_authorized(names_of(keys));
  zap->set_keys(std::move(keys));
}

}  // namespace

int run_server(const ServerOptions& opt, int signal_fd) {
  std::string err;
  // The state folder holds every job's output: private. A folder that exists keeps the mode
  // someone gave it (the database inside is made 0600 regardless); a wide one is reported.
  bool wider = false;
  if (!ensure_dir_with_mode(opt.state_dir, 0700, &wider, &err)) return fail(err);
  if (wider) {
    spdlog::warn("state folder {} is readable by others (mode wider than 0700); the database in it "
                 "is 0600", opt.state_dir.string());
  }
  if (!ensure_dir_with_mode(opt.config.results_dir, kResultsDirMode, &wider, &err)) return fail(err);
  if (wider) {
    spdlog::warn("results folder {} grants more than mode 0750 (others may read, or write, results)",
                 opt.config.results_dir.string());
  }
  Store store;
  const std::string db_path = (opt.state_dir / "simpleci.db").string();
  if (!store.open(db_path, &err)) return fail(err);
  // Commits are flushed to the disk on the syncer's thread; durable replies wait for it.
  std::unique_ptr<WalSyncer> syncer = WalSyncer::open(db_path, &err);
  if (!syncer) return fail(err);

  zmq::context_t ctx(1);
  std::unique_ptr<curve::ZapHandler> zap;
  std::string secret;
  bool use_curve = !opt.curve_secret_key_file.empty();
  std::map<std::string, std::string> keys;
  if (use_curve) {
    if (!curve::load_key(opt.curve_secret_key_file, &secret, &err) ||
        !curve::load_authorized_keys(opt.authorized_keys_dir, &keys, &err)) {
      return fail(err);
    }
    spdlog::info("CURVE on: {} authorised key(s) in {}", keys.size(), opt.authorized_keys_dir);
    zap = std::make_unique<curve::ZapHandler>(ctx, keys);
  }
  zmq::socket_t router = net::make_router(ctx);
  if (use_curve) curve::configure_server(router, secret);

  SystemClock clock;
  RouterOutbox outbox(router);
  Config cfg = opt.config;
  cfg.require_identity = use_curve;
  cfg.async_files = true;
  Dispatcher core(clock, store, outbox, cfg, syncer.get());
  // The result files are made to agree with the store before anyone can connect (so the
  // endpoint file appears once they do), and before recover() starts the clock on running
  // jobs whose runners have 3 heartbeat intervals to come back.
  if (!core.reconcile_files(&err) || !core.recover(&err)) return fail(err);
  try {
    router.bind(opt.bind);
  } catch (const zmq::error_t& e) {
    return fail("cannot bind " + opt.bind + ": " + e.what());
  }
  std::string endpoint = router.get(zmq::sockopt::last_endpoint);
  if (!write_file_atomic(opt.state_dir / "endpoint", endpoint + "\n", false, &err)) return fail(err);
  zmq_socket_monitor(router.handle(), kMonitorEndpoint, ZMQ_EVENT_DISCONNECTED);
  zmq::socket_t mon(ctx, zmq::socket_type::pair);
  mon.connect(kMonitorEndpoint);
  if (use_curve) core.set_authorized(names_of(keys));
  spdlog::info("listening on {}", endpoint);

  const Millis tick_every(std::clamp<int64_t>(cfg.heartbeat_ms / 4, 5, 250));
  SteadyTime next_tick = clock.now();
  std::vector<std::string_view> views;
  while (true) {
    zmq::pollitem_t items[] = {{router.handle(), 0, ZMQ_POLLIN, 0},
                               {mon.handle(), 0, ZMQ_POLLIN, 0},
                               {nullptr, signal_fd, ZMQ_POLLIN, 0},
                               {nullptr, core.writer_fd(), ZMQ_POLLIN, 0},
                               {nullptr, core.syncer_fd(), ZMQ_POLLIN, 0}};
    auto wait = std::max<Millis>(Millis(0), std::chrono::duration_cast<Millis>(next_tick - clock.now()));
    try {
      zmq::poll(items, 5, wait);
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) spdlog::warn("poll: {}", e.what());
    }
    if (items[2].revents & ZMQ_POLLIN) {
      int sig = read_signal(signal_fd);
      if (sig == SIGHUP) {
        reload_keys(opt, zap.get(), core);
      } else if (sig != 0) {
        spdlog::info("signal {} received, shutting down", sig);
        break;
      }
    }
    // A failed WAL flush: the page cache cannot be trusted with the store any more. Stop without
    // sending what waited for the flush (logged by on_synced); peers re-send, the store is
    // recovered at the next start.
    if ((items[4].revents & ZMQ_POLLIN) && !core.on_synced()) return 1;
    if (items[3].revents & ZMQ_POLLIN) core.on_written();
    for (int fd : closed_connections(mon)) core.on_disconnect(fd);
    const int batch = core.writer_backlog() > kMaxWriterBacklog ? 0 : kBatch;
    for (int n = 0; n < batch && core.unwritten_bytes() < kMaxUnwrittenBytes &&
                    core.round_bytes() < kMaxRoundBytes;
         ++n) {
      auto r = net::recv(router, true, 4);
      if (!r) break;
      // libzmq reports a closed connection (on the monitor) before the descriptor can be reused,
      // so taking every pending loss before each message means a message on a reused fd is
      // never mistaken for the connection that had it before (nor that loss for this peer).
      for (int fd : closed_connections(mon)) core.on_disconnect(fd);
      if (r->frames.empty()) continue;
      views.clear();
      for (size_t i = 1; i < r->frames.size(); ++i) views.push_back(net::view(r->frames[i]));
      std::string_view user_id;
      if (use_curve) {
        const char* uid = zmq_msg_gets(r->frames.back().handle(), "User-Id");
        if (uid) user_id = uid;
      }
      core.on_message(net::view(r->frames[0]), r->src_fd, views, user_id);
    }
    if (clock.now() >= next_tick) {
      core.tick();
      next_tick = clock.now() + tick_every;
    }
    core.flush();
  }
  core.flush();
  core.finish_writes();
  if (core.sync_failed()) return 1;
  zmq_socket_monitor(router.handle(), nullptr, 0);
  return 0;
}

}  // namespace simpleci::dispatcher
