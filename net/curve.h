// CurveZMQ set-up: key files, socket options, and a ZAP handler that admits only listed keys.
//
// Key files hold one Z85-encoded 32-byte key (40 characters) on a line; blank lines and lines
// starting with '#' are ignored. `NAME.key` holds a secret key (mode 0600), `NAME.pub` the
// matching public key. A folder of authorised keys holds one `NAME.pub` per allowed peer; NAME
// (a safe name) becomes the peer's identity, which the dispatcher reads from each message's
// "User-Id" property, so a peer cannot claim someone else's name. The subfolder a NAME.pub is in
// gives the key its role (net/roles.h); keys directly in the folder have every role.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include <zmq.hpp>

#include "common/logging.h"
#include "net/roles.h"

namespace simpleci::curve {

inline constexpr size_t kZ85KeyLen = 40;

// Writes <dir>/<name>.key (secret, 0600) and <dir>/<name>.pub. Refuses to overwrite existing
// files. name must be a safe name.
bool keygen(const std::filesystem::path& dir, const std::string& name, std::string* err);

// Reads one Z85 key from a key file and checks it decodes to 32 bytes.
bool load_key(const std::filesystem::path& file, std::string* z85, std::string* err);

// As load_key, for a secret key: refuses (as ssh does) a file that group or others may read or
// write, with *err naming the file and the fix: "keys/b7.key is readable by others (mode 0644);
// run chmod 600 keys/b7.key". Every component that loads a secret key loads it through this.
bool load_secret_key(const std::filesystem::path& file, std::string* z85, std::string* err);

// Public key belonging to a Z85 secret key.
bool public_from_secret(const std::string& secret_z85, std::string* public_z85, std::string* err);

// One authorised key: the peer's name (its file's stem) and its role.
struct KeyEntry {
  std::string name;
  Role role = Role::kAny;
  bool operator==(const KeyEntry&) const = default;
};
using AuthorizedKeys = std::map<std::string, KeyEntry>;  // by public key (Z85)

// Loads every NAME.pub in dir (role kAny) and in its role folders dir/runners, dir/observers,
// dir/clients and dir/admins. Files with other extensions and folders starting with '.' are
// ignored. An error naming the file or folder (and *keys left as it was) for: a bad .pub file,
// an unsafe name, another subfolder, the same key or the same name listed twice.
bool load_authorized_keys(const std::filesystem::path& dir, AuthorizedKeys* keys,
                          std::string* err);

// How many keys have role kAny (keys directly in the folder: roles are not in force for them).
size_t keys_without_role(const AuthorizedKeys& keys);

// Client side (DEALER): encrypts to the server key and authenticates with our own pair.
void configure_client(zmq::socket_t& s, const std::string& server_public_z85,
                      const std::string& client_secret_z85);

// Server side (ROUTER): CURVE server with our secret key, in ZAP domain "simpleci".
void configure_server(zmq::socket_t& s, const std::string& server_secret_z85);

// Answers ZAP requests (RFC 27) on inproc://zeromq.zap.01 in ctx: CURVE clients whose public
// key is listed get status 200 and their name as User-Id; all others are refused (400) and
// counted. Must be started before the server socket binds; stops in its destructor.
class ZapHandler {
 public:
  ZapHandler(zmq::context_t& ctx, AuthorizedKeys keys);
  ~ZapHandler();
  ZapHandler(const ZapHandler&) = delete;
  ZapHandler& operator=(const ZapHandler&) = delete;

  // Replaces the listed keys (a reloaded folder); connections made later are checked against
  // the new list. Thread-safe.
  void set_keys(AuthorizedKeys keys);

  uint64_t refused() const { return refused_.load(); }
  uint64_t admitted() const { return admitted_.load(); }

 private:
  void run();

  zmq::context_t& ctx_;
  std::mutex mu_;
  AuthorizedKeys keys_;  // guarded by mu_
  zmq::socket_t rep_;
  zmq::socket_t stop_tx_;
  std::atomic<uint64_t> refused_{0};
  LogLimiter log_limit_;  // refusals are logged at a bounded rate
  std::atomic<uint64_t> admitted_{0};
  std::thread thread_;
};

}  // namespace simpleci::curve
