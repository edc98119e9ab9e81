#include "dispatcher/server.h"

#include <malloc.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <cstdio>
#include <csignal>
#include <map>
#include <memory>
#include <set>

#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include "dispatcher/results.h"
#include "dispatcher/store.h"
#include "net/curve.h"
#include "net/endpoint.h"
#include "common/fsutil.h"
#include "net/reply_budget.h"
#include "common/signals.h"
#include "net/transport.h"

namespace simpleci::dispatcher {

namespace {

constexpr const char* kProgram = "simpleci-dispatcher";
constexpr const char* kMonitorEndpoint = "inproc://simpleci-dispatcher-monitor";
constexpr int kBatch = 4096;  // messages read per round before one group commit
// A round also ends after this long, so the replies it produced (and the commit they wait for)
// never wait behind a long run of costly requests from other peers.
constexpr Millis kRoundTime(20);
constexpr Millis kTrimEvery(1000);  // at most this often, and only when a round read nothing
constexpr size_t kTrimAfterReleased = size_t{8} << 20;

// glibc keeps memory freed after a burst (bodies of big replies, decoded frames) in its arenas,
// so the process stays large long after the peer left. Hands it back when the loop goes idle
// after work was done or many reply bytes were released.
class Trimmer {
 public:
  void round(SteadyTime now, int messages, size_t bytes_in_flight) {
    worked_ |= messages > 0;
    const bool released = last_in_flight_ > bytes_in_flight + kTrimAfterReleased;
    if (messages > 0 || (!worked_ && !released) || now - last_ < kTrimEvery) return;
    ::malloc_trim(0);
    last_ = now;
    worked_ = false;
    last_in_flight_ = bytes_in_flight;
  }
  void sent(size_t bytes_in_flight) { last_in_flight_ = std::max(last_in_flight_, bytes_in_flight); }

 private:
  SteadyTime last_{};
  bool worked_ = false;
  size_t last_in_flight_ = 0;
};
constexpr size_t kMaxWriterBacklog = 20000;  // result files waiting for the writer thread
constexpr size_t kMaxUnwrittenBytes = 256u << 20;  // and the output bytes they hold
constexpr size_t kMaxRoundBytes = 16u << 20;  // output in one commit (and its WAL flush)

int fail(const std::string& what) {
  std::fprintf(stderr, "%s: %s\n", kProgram, what.c_str());
  return 1;
}

// Sends over the ROUTER, holding each peer to its reply budget: a reply that would take the
// peer (or all peers together) over budget, or a second output reply while the first is unread,
// is answered with a small ERROR busy instead (dropped when even that does not fit).
class RouterOutbox final : public Outbox {
 public:
  explicit RouterOutbox(zmq::socket_t& s) : s_(s) {}
  bool send(std::string_view peer, const msg::Message& m) override {
    std::string body = msg::encode(m);
    bool output = net::carries_output(m);
    if (net::budgeted(m) &&
        budget_.admit(peer, body.size(), output) != net::ReplyBudget::Verdict::kSend) {
      ++over_budget_;
      const std::optional<uint64_t> request_id = net::reply_request_id(m);
      if (!request_id) return false;
      body = msg::encode(msg::Error{*request_id, msg::ErrorCode::kBusy, msg::kBusyText});
      output = false;
      if (budget_.admit(peer, body.size(), false, true) != net::ReplyBudget::Verdict::kSend) {
        return false;
      }
    }
    const size_t bytes = body.size();
    return net::send_encoded_to(s_, peer, std::move(body), budget_.charge(peer, bytes, output));
  }
  bool send_shared(std::string_view peer, const SharedBody& b) override {
    const size_t bytes = b.bytes->size();
    if (budget_.admit(peer, bytes, false) != net::ReplyBudget::Verdict::kSend) {
      ++over_budget_;
      return false;
    }
    return net::send_shared_to(s_, peer, b.bytes, budget_.charge(peer, bytes, false));
  }
  bool output_in_flight(std::string_view peer) const override {
    return budget_.output_in_flight(peer);
  }
  uint64_t over_budget() const override { return over_budget_; }
  size_t peer_bytes(std::string_view peer) const override { return budget_.peer_bytes(peer); }
  size_t bytes_in_flight() const { return budget_.total_bytes(); }

 private:
  zmq::socket_t& s_;
  net::ReplyBudget budget_;
  uint64_t over_budget_ = 0;
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

Dispatcher::Authorized roles_of(const curve::AuthorizedKeys& keys) {
  Dispatcher::Authorized roles;
  for (const auto& [key, e] : keys) roles[e.name] = e.role;
  return roles;
}

// Keys directly in the authorised folder (the layout from before roles) may send anything.
void warn_without_roles(const ServerOptions& opt, const curve::AuthorizedKeys& keys) {
  if (size_t n = curve::keys_without_role(keys)) {
    spdlog::warn("{} key(s) directly in {} have every role (roles are not in force for them); "
                 "move each NAME.pub into runners/, observers/, clients/ or admins/",
                 n, opt.authorized_keys_dir);
  }
}

// SIGHUP: reads the authorised-keys folder again. New connections are checked against the new
// list at once; peers whose key is gone are refused from their next message on. A folder that
// cannot be read (or holds a bad key) leaves the current list in force.
void reload_keys(const ServerOptions& opt, curve::ZapHandler* zap, Dispatcher& core) {
  if (!zap) {
    spdlog::info("SIGHUP: no authorised keys to reload (CURVE is off)");
    return;
  }
  curve::AuthorizedKeys keys;
  std::string err;
  if (!curve::load_authorized_keys(opt.authorized_keys_dir, &keys, &err)) {
    spdlog::error("SIGHUP: keeping the current authorised keys: {}", err);
    return;
  }
  spdlog::info("SIGHUP: {} authorised key(s) in {}", keys.size(), opt.authorized_keys_dir);
  warn_without_roles(opt, keys);
  core.set_authorized(roles_of(keys));
  zap->set_keys(std::move(keys));
}

// libzmq removes a socket file left at the path before binding, which would quietly take the
// address from a dispatcher still running there; a TCP bind would fail instead, and so does this.
bool socket_in_use(const std::string& path) {
  sockaddr_un addr{};
  if (path.size() >= sizeof addr.sun_path) return false;
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const bool listening = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return listening;
}

// An ipc:// socket's folder decides who can reach the dispatcher, so it must be this user's and
// closed to changes by anyone else: made 0700 when missing; refused when another user owns it or
// group or others may write to it (they could put their own socket in its place).
bool prepare_ipc_folder(const std::string& socket, std::string* err) {
  std::filesystem::path dir = std::filesystem::path(socket).parent_path();
  if (dir.empty()) dir = ".";
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) {
    if (dir.has_parent_path()) std::filesystem::create_directories(dir.parent_path(), ec);
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      *err = "cannot create the ipc socket folder '" + dir.string() + "': " + std::strerror(errno);
      return false;
    }
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    *err = "the ipc socket folder '" + dir.string() + "' is not a folder";
    return false;
  }
  if (st.st_uid != ::geteuid()) {
    *err = "the ipc socket folder '" + dir.string() + "' belongs to uid " +
           std::to_string(st.st_uid) + ", not to this user (uid " + std::to_string(::geteuid()) +
           "); use a folder of your own";
    return false;
  }
  if ((st.st_mode & 022) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    *err = "the ipc socket folder '" + dir.string() + "' is writable by group or others (mode " +
           mode + "); run chmod 700 " + dir.string();
    return false;
  }
  if (socket_in_use(socket)) {
    *err = "cannot bind ipc://" + socket + ": another process is listening on it";
    return false;
  }
  if ((st.st_mode & 077) != 0) {
    spdlog::warn("the ipc socket folder {} is open to group or others (mode {:04o}): whoever can "
                 "reach the socket in it can submit, cancel and run as a runner",
                 dir.string(), st.st_mode & 07777);
  }
  return true;
}

// The state folder holds every job's output: private. A folder that exists keeps the mode
// someone gave it (the database inside is made 0600 regardless); a wide one is reported. The
// results folder is made with kResultsDirMode.
bool prepare_folders(const ServerOptions& opt, std::string* err) {
  bool wider = false;
  if (!ensure_dir_with_mode(opt.state_dir, 0700, &wider, err)) return false;
  if (wider) {
    spdlog::warn("state folder {} is readable by others (mode wider than 0700); the database in it "
                 "is 0600", opt.state_dir.string());
  }
  if (!ensure_dir_with_mode(opt.config.results_dir, kResultsDirMode, &wider, err)) return false;
  if (wider) {
    spdlog::warn("results folder {} grants more than mode 0750 (others may read, or write, results)",
                 opt.config.results_dir.string());
  }
  return true;
}

// One dispatcher process: the store and its syncer, the ZeroMQ sockets (ROUTER, its monitor, the
// CURVE handler), the Dispatcher, and the loop that feeds it. Members are destroyed in reverse
// order: the Dispatcher (its writer thread) first, the sockets before their context, the store last.
class Server {
 public:
  Server(const ServerOptions& opt, int signal_fd) : opt_(opt), signal_fd_(signal_fd) {}
  // Start-up, then the loop until a stopping signal; returns the process exit code.
  int run();

 private:
  bool start(std::string* err);
  bool open_store(std::string* err);
  bool start_curve(std::string* err);
  bool listen(std::string* err);
  // One poll round. False when the loop ends (*code: the exit code).
  bool step(int* code);
  // Reads and hands over up to a round's worth of messages; returns how many were read.
  int read_messages();
  void take_losses();
  int stop();

  const ServerOptions& opt_;
  const int signal_fd_;
  Store store_;
  std::unique_ptr<WalSyncer> syncer_;
  zmq::context_t ctx_{1};
  std::unique_ptr<curve::ZapHandler> zap_;
  curve::AuthorizedKeys keys_;
  std::string secret_;
  bool use_curve_ = false;
  zmq::socket_t router_;
  zmq::socket_t mon_;
  SystemClock clock_;
  std::unique_ptr<RouterOutbox> outbox_;
  std::unique_ptr<Dispatcher> core_;
  Millis tick_every_{};
  SteadyTime next_tick_{};
  std::vector<std::string_view> views_;
  Trimmer trimmer_;
};

bool Server::open_store(std::string* err) {
  const std::string db_path = (opt_.state_dir / "simpleci.db").string();
  if (!store_.open(db_path, err)) return false;
  if (store_.migrated_from() > 0) {
    spdlog::info("store migrated from version {} to 2 (the version-{} store is kept as {})", store_.migrated_from(),
                 store_.migrated_from(), store_.migration_copy());
  }
  // Commits are flushed to the disk on the syncer's thread; durable replies wait for it.
  syncer_ = WalSyncer::open(db_path, err);
  return syncer_ != nullptr;
}

bool Server::start_curve(std::string* err) {
  use_curve_ = !opt_.curve_secret_key_file.empty();
  if (!use_curve_) return true;
  if (!curve::load_secret_key(opt_.curve_secret_key_file, &secret_, err) ||
      !curve::load_authorized_keys(opt_.authorized_keys_dir, &keys_, err)) {
    return false;
  }
  spdlog::info("CURVE on: {} authorised key(s) in {}", keys_.size(), opt_.authorized_keys_dir);
  warn_without_roles(opt_, keys_);
  zap_ = std::make_unique<curve::ZapHandler>(ctx_, keys_);
  return true;
}

bool Server::listen(std::string* err) {
  try {
    router_.bind(opt_.bind);
  } catch (const zmq::error_t& e) {
    *err = "cannot bind " + opt_.bind + ": " + e.what();
    return false;
  }
  std::string endpoint = router_.get(zmq::sockopt::last_endpoint);
  if (!write_file_atomic(opt_.state_dir / "endpoint", endpoint + "\n", false, err)) return false;
  zmq_socket_monitor(router_.handle(), kMonitorEndpoint, ZMQ_EVENT_DISCONNECTED);
  mon_ = zmq::socket_t(ctx_, zmq::socket_type::pair);
  mon_.connect(kMonitorEndpoint);
  if (use_curve_) core_->set_authorized(roles_of(keys_));
  spdlog::info("listening on {}", endpoint);
  return true;
}

bool Server::start(std::string* err) {
  if (!prepare_folders(opt_, err) || !open_store(err) || !start_curve(err)) return false;
  if (const std::string ipc = ipc_path(opt_.bind); !ipc.empty() && !prepare_ipc_folder(ipc, err)) {
    return false;
  }
  router_ = net::make_router(ctx_);
  if (use_curve_) curve::configure_server(router_, secret_);
  outbox_ = std::make_unique<RouterOutbox>(router_);
  Config cfg = opt_.config;
  cfg.require_identity = use_curve_;
  cfg.send_urls = use_curve_;  // only a peer that checked the server key may be sent URLs
  core_ = std::make_unique<Dispatcher>(clock_, store_, *outbox_, cfg, syncer_.get());
  // The result files are made to agree with the store before anyone can connect (so the
  // endpoint file appears once they do), and before recover() starts the clock on running
  // jobs whose runners have 3 heartbeat intervals to come back.
  if (!core_->reconcile_files(err) || !core_->recover(err) || !listen(err)) return false;
  tick_every_ = Millis(std::clamp<int64_t>(cfg.heartbeat_ms / 4, 5, 250));
  next_tick_ = clock_.now();
  return true;
}

void Server::take_losses() {
  for (int fd : closed_connections(mon_)) core_->on_disconnect(fd);
}

int Server::read_messages() {
  Dispatcher& core = *core_;
  const int batch = core.writer_backlog() > kMaxWriterBacklog ? 0 : kBatch;
  const SteadyTime round_end = clock_.now() + kRoundTime;
  int n = 0;
  for (; n < batch && core.unwritten_bytes() < kMaxUnwrittenBytes &&
         core.round_bytes() < kMaxRoundBytes && (n == 0 || clock_.now() < round_end);
       ++n) {
    auto r = net::recv(router_, true, 4);
    if (!r) break;
    // libzmq reports a closed connection (on the monitor) before the descriptor can be reused,
    // so taking every pending loss before each message means a message on a reused fd is
    // never mistaken for the connection that had it before (nor that loss for this peer).
    take_losses();
    if (r->frames.empty()) continue;
    views_.clear();
    for (size_t i = 1; i < r->frames.size(); ++i) views_.push_back(net::view(r->frames[i]));
    std::string_view user_id;
    if (use_curve_) {
      const char* uid = zmq_msg_gets(r->frames.back().handle(), "User-Id");
      if (uid) user_id = uid;
    }
    core.on_message(net::view(r->frames[0]), r->src_fd, views_, user_id);
  }
  return n;
}

bool Server::step(int* code) {
  zmq::pollitem_t items[] = {{router_.handle(), 0, ZMQ_POLLIN, 0},
                             {mon_.handle(), 0, ZMQ_POLLIN, 0},
                             {nullptr, signal_fd_, ZMQ_POLLIN, 0},
                             {nullptr, core_->writer_fd(), ZMQ_POLLIN, 0},
                             {nullptr, core_->syncer_fd(), ZMQ_POLLIN, 0}};
  auto wait = std::max<Millis>(Millis(0), std::chrono::duration_cast<Millis>(next_tick_ - clock_.now()));
  try {
    zmq::poll(items, 5, wait);
  } catch (const zmq::error_t& e) {
    if (e.num() != EINTR) spdlog::warn("poll: {}", e.what());
  }
  if (items[2].revents & ZMQ_POLLIN) {
    int sig = read_signal(signal_fd_);
    if (sig == SIGHUP) {
      reload_keys(opt_, zap_.get(), *core_);
    } else if (sig != 0) {
      spdlog::info("signal {} received, shutting down", sig);
      *code = stop();
      return false;
    }
  }
  // A failed WAL flush: the page cache cannot be trusted with the store any more. Stop without
  // sending what waited for the flush (logged by on_synced); peers re-send, the store is
  // recovered at the next start.
  if ((items[4].revents & ZMQ_POLLIN) && !core_->on_synced()) {
    *code = 1;
    return false;
  }
  if (items[3].revents & ZMQ_POLLIN) core_->on_written();
  take_losses();
  const int n = read_messages();
  if (clock_.now() >= next_tick_) {
    core_->tick();
    next_tick_ = clock_.now() + tick_every_;
  }
  core_->flush();
  trimmer_.sent(outbox_->bytes_in_flight());
  trimmer_.round(clock_.now(), n, outbox_->bytes_in_flight());
  return true;
}

int Server::stop() {
  core_->flush();
  core_->finish_writes();
  if (core_->sync_failed()) return 1;
  zmq_socket_monitor(router_.handle(), nullptr, 0);
  return 0;
}

int Server::run() {
  std::string err;
  if (!start(&err)) return fail(err);
  int code = 0;
  while (step(&code)) {
  }
  return code;
}

}  // namespace

int run_server(const ServerOptions& opt, int signal_fd) {
  Server server(opt, signal_fd);
  return server.run();
}

}  // namespace simpleci::dispatcher
