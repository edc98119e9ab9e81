#include "net/curve.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <vector>

#include <spdlog/spdlog.h>

#include "common/fsutil.h"
#include "messages/validate.h"

namespace simpleci::curve {

namespace {

constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";
constexpr const char* kDomain = "simpleci";

bool decodes_to_32_bytes(const std::string& z85) {
  if (z85.size() != kZ85KeyLen) return false;
  std::array<uint8_t, 32> raw{};
  return zmq_z85_decode(raw.data(), z85.c_str()) != nullptr;
}

bool write_new_file(const std::filesystem::path& p, const std::string& text, mode_t mode,
                    std::string* err) {
  const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    *err = "cannot create '" + p.string() + "': " + std::strerror(errno);
    return false;
  }
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::fchmod(fd, mode);  // umask must not widen or narrow what we promised
  if (::close(fd) != 0 || !ok) {
    *err = "cannot write '" + p.string() + "'";
    return false;
  }
  return true;
}

std::string z85_of(const zmq::message_t& m) {
  char out[kZ85KeyLen + 1] = {};
  zmq_z85_encode(out, static_cast<const uint8_t*>(m.data()), m.size());
  return out;
}

}  // namespace

bool keygen(const std::filesystem::path& dir, const std::string& name, std::string* err) {
  if (!is_safe_name(name)) {
    *err = "key name must be 1-64 of A-Z a-z 0-9 . _ - (not starting with . or -), got '" + name +
           "'";
    return false;
  }
  char pub[kZ85KeyLen + 1] = {}, sec[kZ85KeyLen + 1] = {};
  if (zmq_curve_keypair(pub, sec) != 0) {
    *err = "cannot generate a CURVE key pair: libzmq was built without CURVE";
    return false;
  }
  const auto key = dir / (name + ".key");
  const auto pubf = dir / (name + ".pub");
  if (std::filesystem::exists(key) || std::filesystem::exists(pubf)) {
    *err = "refusing to overwrite '" + key.string() + "' or '" + pubf.string() + "'";
    return false;
  }
  return write_new_file(key, "# simpleCI CURVE secret key: keep private\n" + std::string(sec) + "\n",
                        0600, err) &&
         write_new_file(pubf, "# simpleCI CURVE public key\n" + std::string(pub) + "\n", 0644, err);
}

bool load_key(const std::filesystem::path& file, std::string* z85, std::string* err) {
  std::string text;
  if (!read_file(file, 4096, &text, err)) return false;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    if (!decodes_to_32_bytes(line)) {
      *err = "'" + file.string() + "' does not hold a 40-character Z85 CURVE key";
      return false;
    }
    *z85 = line;
    return true;
  }
  *err = "'" + file.string() + "' holds no key";
  return false;
}

bool load_secret_key(const std::filesystem::path& file, std::string* z85, std::string* err) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    *err = "cannot read '" + file.string() + "': " + std::strerror(errno);
    return false;
  }
  const mode_t loose = st.st_mode & 077;
  if (loose != 0) {
    const char* who = (loose & S_IROTH)   ? "readable by others"
                      : (loose & S_IRGRP) ? "readable by its group"
                                         : "writable by group or others";
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    *err = file.string() + " is " + who + " (mode " + mode + "); run chmod 600 " + file.string();
    return false;
  }
  return load_key(file, z85, err);
}

bool public_from_secret(const std::string& secret_z85, std::string* public_z85, std::string* err) {
  char pub[kZ85KeyLen + 1] = {};
  if (!decodes_to_32_bytes(secret_z85) || zmq_curve_public(pub, secret_z85.c_str()) != 0) {
    *err = "not a valid CURVE secret key";
    return false;
  }
  *public_z85 = pub;
  return true;
}

namespace {

// Adds the NAME.pub files directly in dir to *keys with role, checking that no key or name is
// listed twice (names holds every name seen so far).
bool add_keys_in(const std::filesystem::path& dir, Role role, AuthorizedKeys* keys,
                 std::map<std::string, std::filesystem::path>* names, std::string* err) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().extension() != ".pub" || entry.is_directory()) continue;
    const std::string name = entry.path().stem().string();
    if (!is_safe_name(name)) {
      *err = "authorized key '" + entry.path().string() + "': name is not a safe name";
      return false;
    }
    std::string key;
    if (!load_key(entry.path(), &key, err)) return false;
    if (auto seen = names->find(name); seen != names->end()) {
      *err = "authorized keys: the name '" + name + "' is listed twice ('" +
             seen->second.string() + "' and '" + entry.path().string() + "'); keep one";
      return false;
    }
    if (auto same = keys->find(key); same != keys->end()) {
      *err = "authorized keys: '" + entry.path().string() + "' holds the same key as '" +
             (*names)[same->second.name].string() + "'; a key has one name and one role";
      return false;
    }
    (*names)[name] = entry.path();
    (*keys)[key] = KeyEntry{name, role};
  }
  if (ec) {
    *err = "cannot list '" + dir.string() + "': " + ec.message();
    return false;
  }
  return true;
}

}  // namespace

bool load_authorized_keys(const std::filesystem::path& dir, AuthorizedKeys* keys,
                          std::string* err) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    *err = "authorized keys folder '" + dir.string() + "' does not exist";
    return false;
  }
  AuthorizedKeys found;
  std::map<std::string, std::filesystem::path> names;
  if (!add_keys_in(dir, Role::kAny, &found, &names, err)) return false;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (!entry.is_directory(ec)) continue;
    const std::string folder = entry.path().filename().string();
    if (folder.starts_with('.')) continue;
    const std::optional<Role> role = role_from_folder(folder);
    if (!role) {
      *err = "authorized keys folder '" + dir.string() + "' holds '" + folder +
             "/': role folders are runners/, observers/, clients/ and admins/";
      return false;
    }
    if (!add_keys_in(entry.path(), *role, &found, &names, err)) return false;
  }
  if (ec) {
    *err = "cannot list '" + dir.string() + "': " + ec.message();
    return false;
  }
  *keys = std::move(found);
  return true;
}

size_t keys_without_role(const AuthorizedKeys& keys) {
  size_t n = 0;
  for (const auto& [key, e] : keys) n += e.role == Role::kAny;
  return n;
}

void configure_client(zmq::socket_t& s, const std::string& server_public_z85,
                      const std::string& client_secret_z85) {
  std::string pub, err;
  public_from_secret(client_secret_z85, &pub, &err);
  s.set(zmq::sockopt::curve_serverkey, server_public_z85);
  s.set(zmq::sockopt::curve_publickey, pub);
  s.set(zmq::sockopt::curve_secretkey, client_secret_z85);
}

void configure_server(zmq::socket_t& s, const std::string& server_secret_z85) {
  s.set(zmq::sockopt::curve_server, 1);
  s.set(zmq::sockopt::curve_secretkey, server_secret_z85);
  s.set(zmq::sockopt::zap_domain, kDomain);
}

ZapHandler::ZapHandler(zmq::context_t& ctx, AuthorizedKeys keys)
    : ctx_(ctx),
      keys_(std::move(keys)),
      rep_(ctx, zmq::socket_type::rep),
      stop_tx_(ctx, zmq::socket_type::pair) {
  rep_.set(zmq::sockopt::linger, 0);
  rep_.bind(kZapEndpoint);
  const std::string stop_ep = "inproc://simpleci-zap-stop-" + std::to_string(
      reinterpret_cast<uintptr_t>(this));
  stop_tx_.set(zmq::sockopt::linger, 0);
  stop_tx_.bind(stop_ep);
  thread_ = std::thread([this, stop_ep] {
    zmq::socket_t stop_rx(ctx_, zmq::socket_type::pair);
    stop_rx.set(zmq::sockopt::linger, 0);
    stop_rx.connect(stop_ep);
    for (;;) {
      zmq::pollitem_t items[] = {{rep_.handle(), 0, ZMQ_POLLIN, 0},
                                 {stop_rx.handle(), 0, ZMQ_POLLIN, 0}};
      try {
        zmq::poll(items, 2, std::chrono::milliseconds(-1));
      } catch (const zmq::error_t&) {
        return;
      }
      if (items[1].revents & ZMQ_POLLIN) return;
      if (items[0].revents & ZMQ_POLLIN) run();
    }
  });
}

ZapHandler::~ZapHandler() {
  try {
    stop_tx_.send(zmq::str_buffer("stop"), zmq::send_flags::dontwait);
  } catch (const zmq::error_t&) {
  }
  if (thread_.joinable()) thread_.join();
}

// Handles one ZAP request: [version, request_id, domain, address, routing_id, mechanism,
// credentials...] and replies [version, request_id, status, text, user_id, metadata].
void ZapHandler::set_keys(AuthorizedKeys keys) {
  std::lock_guard<std::mutex> lock(mu_);
  keys_ = std::move(keys);
}

void ZapHandler::run() {
  std::vector<zmq::message_t> req;
  try {
    for (;;) {
      zmq::message_t part;
      if (!rep_.recv(part, zmq::recv_flags::dontwait)) break;
      const bool more = part.more();
      if (req.size() < 8) req.push_back(std::move(part));
      if (!more) break;
    }
  } catch (const zmq::error_t&) {
    return;
  }
  if (req.size() < 6) return;  // libzmq never sends this; nothing sane to answer
  const std::string address = req[3].to_string();
  std::string status = "400", text = "not authorized", user, why;
  if (req[5].to_string() == "CURVE" && req.size() >= 7 && req[6].size() == 32) {
    const std::string key = z85_of(req[6]);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (auto it = keys_.find(key); it != keys_.end()) user = it->second.name;
    }
    if (!user.empty()) {
      status = "200";
      text = "OK";
    } else {
      why = "unlisted key " + key;
    }
  } else {
    why = "mechanism " + req[5].to_string() + " is not CURVE";
  }
  (status == "200" ? admitted_ : refused_)++;
  uint64_t held = 0;
  if (!why.empty() && log_limit_.allow(std::chrono::steady_clock::now(), &held)) {
    spdlog::warn("refused a client from {}: {}{}", address, why,
                 held ? " (" + std::to_string(held) + " more refusals not logged)" : "");
  }
  try {
    rep_.send(zmq::str_buffer("1.0"), zmq::send_flags::sndmore);
    rep_.send(req[1], zmq::send_flags::sndmore);
    rep_.send(zmq::buffer(status), zmq::send_flags::sndmore);
    rep_.send(zmq::buffer(text), zmq::send_flags::sndmore);
    rep_.send(zmq::buffer(user), zmq::send_flags::sndmore);
    rep_.send(zmq::str_buffer(""), zmq::send_flags::none);
  } catch (const zmq::error_t&) {
  }
}

}  // namespace simpleci::curve
