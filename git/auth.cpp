#include "git/auth.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>

#include <CLI/CLI.hpp>

namespace simpleci::git {

namespace {

// What set_auth() accepted; read by every Session.
struct Config {
  Auth auth;
  std::vector<Credential> creds;
};

Config& config() {
  static Config c;
  return c;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string home_known_hosts() {
  const char* home = std::getenv("HOME");
  if (!home || !*home) {
    const passwd* pw = ::getpwuid(::geteuid());
    home = pw ? pw->pw_dir : "";
  }
  return std::string(home) + "/.ssh/known_hosts";
}

std::string known_hosts_file() {
  const std::string& f = config().auth.known_hosts;
  return f.empty() ? home_known_hosts() : f;
}

std::string current_user() {
  const passwd* pw = ::getpwuid(::geteuid());
  return pw && pw->pw_name ? pw->pw_name : "git";
}

bool read_file(const std::string& path, std::string* text) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream s;
  s << in.rdbuf();
  *text = s.str();
  return !in.bad();
}

// Base64 without line breaks; false on anything else. OpenSSL's block decoder counts the padding
// as zero bytes, so they are taken off again.
bool base64_decode(std::string_view in, std::string* out) {
  if (in.empty() || in.size() % 4 != 0) return false;
  std::string buf(in.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(buf.data()),
                                reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  if (n < 0) return false;
  size_t len = static_cast<size_t>(n);
  if (in.ends_with("==")) len -= 2;
  else if (in.ends_with("=")) len -= 1;
  *out = buf.substr(0, len);
  return true;
}

std::string base64_encode(std::string_view in) {
  std::string buf((in.size() + 2) / 3 * 4 + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(buf.data()),
                                reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  buf.resize(static_cast<size_t>(n));
  return buf;
}

// The "|1|salt|hmac" form of a known_hosts name: HMAC-SHA1 keyed with the salt over the name.
bool hashed_name_matches(std::string_view entry, const std::string& name) {
  entry.remove_prefix(3);
  const size_t bar = entry.find('|');
  std::string salt, mac;
  if (bar == std::string_view::npos || !base64_decode(entry.substr(0, bar), &salt) ||
      !base64_decode(entry.substr(bar + 1), &mac)) {
    return false;
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!HMAC(EVP_sha1(), salt.data(), static_cast<int>(salt.size()), reinterpret_cast<const unsigned char*>(name.data()),
            name.size(), digest, &len)) {
    return false;
  }
  return mac.size() == len && std::equal(mac.begin(), mac.end(), reinterpret_cast<const char*>(digest));
}

// ssh's host patterns: '*' any run of characters, '?' one; everything else (brackets too) literal.
bool glob_match(std::string_view pattern, std::string_view name) {
  if (pattern.empty()) return name.empty();
  if (pattern[0] == '*') {
    for (size_t i = 0; i <= name.size(); ++i) {
      if (glob_match(pattern.substr(1), name.substr(i))) return true;
    }
    return false;
  }
  return !name.empty() && (pattern[0] == '?' || pattern[0] == name[0]) && glob_match(pattern.substr(1), name.substr(1));
}

// A comma-separated host list (patterns with * and ?, !negations) against name.
bool names_match(std::string_view list, const std::string& name) {
  if (list.starts_with("|1|")) return hashed_name_matches(list, name);
  bool matched = false;
  while (!list.empty()) {
    const size_t comma = list.find(',');
    std::string pattern = lower(std::string(list.substr(0, comma)));
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    const bool negated = !pattern.empty() && pattern[0] == '!';
    if (negated) pattern.erase(0, 1);
    if (pattern.empty() || !glob_match(pattern, name)) continue;
    if (negated) return false;
    matched = true;
  }
  return matched;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

bool url_decode(std::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    const int hi = i + 2 < in.size() ? hex_digit(in[i + 1]) : -1, lo = hi >= 0 ? hex_digit(in[i + 2]) : -1;
    if (lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

std::string trim_slashes(std::string_view p) {
  while (!p.empty() && p.front() == '/') p.remove_prefix(1);
  while (!p.empty() && p.back() == '/') p.remove_suffix(1);
  return std::string(p);
}

// "host", "host:port", "[v6]" or "[v6]:port" -> host and port (default_port when none).
bool split_host_port(std::string_view hp, int default_port, std::string* host, int* port) {
  *port = default_port;
  std::string_view rest;
  if (hp.starts_with("[")) {
    const size_t close = hp.find(']');
    if (close == std::string_view::npos) return false;
    *host = std::string(hp.substr(1, close - 1));
    rest = hp.substr(close + 1);
  } else {
    const size_t colon = hp.find(':');
    *host = std::string(hp.substr(0, colon));
    rest = colon == std::string_view::npos ? std::string_view() : hp.substr(colon);
  }
  if (!rest.empty()) {
    if (rest[0] != ':' || rest.size() < 2 || rest.size() > 6) return false;
    int p = 0;
    for (char c : rest.substr(1)) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return false;
      p = p * 10 + (c - '0');
    }
    if (p < 1 || p > 65535) return false;
    *port = p;
  }
  return !host->empty();
}

int default_port(const std::string& scheme) {
  if (scheme == "https") return 443;
  if (scheme == "http") return 80;
  return scheme == "ssh" ? 22 : 0;
}

// "https://user@host[:port][/path]" of an entry, without its token.
std::string entry_text(const Credential& c) {
  std::string s = c.scheme + "://" + c.user + "@" + c.host;
  if (c.port != default_port(c.scheme)) s += ":" + std::to_string(c.port);
  if (!c.path.empty()) s += "/" + c.path;
  return s;
}

// path equal to prefix, or below it by whole segments; "repo" also stands for "repo.git".
bool path_under(const std::string& path, const std::string& prefix) {
  if (prefix.empty() || path == prefix || path == prefix + ".git") return true;
  return path.starts_with(prefix + "/");
}

std::string one_line(std::string s) {
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

// A file the flag names must be a readable regular file; private ones also must not be readable
// by group or others (as ssh refuses a key that is).
bool check_file(const std::string& flag, const std::string& path, bool is_private, std::string* err) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    *err = flag + ": no such file: " + path;
    return false;
  }
  if (std::ifstream in(path); !in) {
    *err = flag + ": cannot read " + path;
    return false;
  }
  if (is_private && (st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    *err = flag + ": permissions " + mode + " for " + path + " are too open: it must be readable by its owner only (chmod 600 " +
           path + ")";
    return false;
  }
  return true;
}

// Whether a private key file is protected by a passphrase, which a fetch cannot type: PEM keys
// say ENCRYPTED in their header; OpenSSH's own format names its cipher ("none" when plain) after
// the "openssh-key-v1" magic of its base64 body.
bool key_has_passphrase(const std::string& text) {
  if (text.find("ENCRYPTED") != std::string::npos) return true;
  constexpr std::string_view kBegin = "-----BEGIN OPENSSH PRIVATE KEY-----", kEnd = "-----END OPENSSH PRIVATE KEY-----";
  const size_t begin = text.find(kBegin), end = text.find(kEnd);
  if (begin == std::string::npos || end == std::string::npos || end < begin) return false;
  std::string body, raw;
  for (char c : text.substr(begin + kBegin.size(), end - begin - kBegin.size())) {
    if (!std::isspace(static_cast<unsigned char>(c))) body.push_back(c);
  }
  constexpr std::string_view kMagic{"openssh-key-v1\0", 15};
  if (!base64_decode(body, &raw) || !std::string_view(raw).starts_with(kMagic)) return false;
  const std::string cipher = key_type(raw.substr(kMagic.size()));  // the same length-prefixed string
  return !cipher.empty() && cipher != "none";
}

}  // namespace

UrlParts parse_url(const std::string& url) {
  UrlParts u;
  const size_t sep = url.find("://");
  std::string_view rest;
  if (sep != std::string::npos) {
    const std::string scheme = lower(url.substr(0, sep));
    if (scheme == "ssh" || scheme == "ssh+git" || scheme == "git+ssh") u.scheme = "ssh";
    else if (scheme == "https" || scheme == "http") u.scheme = scheme;
    else return {};
    rest = std::string_view(url).substr(sep + 3);
    const size_t slash = rest.find('/');
    std::string_view authority = rest.substr(0, slash);
    u.path = slash == std::string_view::npos ? "" : std::string(rest.substr(slash + 1));
    if (const size_t at = authority.rfind('@'); at != std::string_view::npos) {
      u.user = std::string(authority.substr(0, at));
      authority.remove_prefix(at + 1);
    }
    if (!split_host_port(authority, default_port(u.scheme), &u.host, &u.port)) return {};
    return u;
  }
  // scp-like: a colon before the first slash ([user@]host:path); anything else is a local path.
  const size_t colon = url.find(url.starts_with("[") ? "]:" : ":"), slash = url.find('/');
  if (url.empty() || colon == std::string::npos || (slash != std::string::npos && slash < colon)) return {};
  std::string_view authority = std::string_view(url).substr(0, url.starts_with("[") ? colon + 1 : colon);
  u.path = url.substr(url.starts_with("[") ? colon + 2 : colon + 1);
  if (const size_t at = authority.rfind('@'); at != std::string_view::npos) {
    u.user = std::string(authority.substr(0, at));
    authority.remove_prefix(at + 1);
  }
  if (authority.starts_with("[")) authority = authority.substr(1, authority.size() - 2);
  if (authority.empty()) return {};
  u.scheme = "ssh";
  u.host = std::string(authority);
  u.port = 22;
  return u;
}

bool parse_credentials(const std::string& text, const std::string& file, std::vector<Credential>* out,
                       std::string* err) {
  out->clear();
  std::istringstream in(text);
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    const size_t start = line.find_first_not_of(" \t");
    if (start == std::string::npos) continue;
    const std::string where = file + ":" + std::to_string(number) + ": ";
    std::string_view l = std::string_view(line).substr(start);
    Credential c;
    const size_t sep = l.find("://");
    c.scheme = sep == std::string_view::npos ? "" : lower(std::string(l.substr(0, sep)));
    if (c.scheme != "https" && c.scheme != "http") {
      *err = where + "not a credential line: want https://user:token@host[:port][/path]";
      return false;
    }
    l.remove_prefix(sep + 3);
    const size_t slash = l.find('/');
    std::string_view authority = l.substr(0, slash);
    c.path = slash == std::string_view::npos ? "" : trim_slashes(l.substr(slash + 1));
    const size_t at = authority.rfind('@');
    const size_t colon = at == std::string_view::npos ? at : authority.substr(0, at).find(':');
    if (at == std::string_view::npos || colon == std::string_view::npos || colon == 0) {
      *err = where + "no user:token@ before the host";
      return false;
    }
    if (!url_decode(authority.substr(0, colon), &c.user) || !url_decode(authority.substr(colon + 1, at - colon - 1), &c.token)) {
      *err = where + "a bad %-escape in the user or the token";
      return false;
    }
    if (!split_host_port(authority.substr(at + 1), default_port(c.scheme), &c.host, &c.port)) {
      *err = where + "a bad host or port";
      return false;
    }
    c.host = lower(c.host);
    out->push_back(std::move(c));
  }
  return true;
}

const Credential* match_credential(const std::vector<Credential>& creds, const std::string& url) {
  const UrlParts u = parse_url(url);
  if (u.scheme != "https" && u.scheme != "http") return nullptr;
  const std::string host = lower(u.host), path = trim_slashes(u.path);
  std::string user;
  if (!u.user.empty() && !url_decode(u.user, &user)) return nullptr;
  const Credential* best = nullptr;
  for (const Credential& c : creds) {
    if (c.scheme != u.scheme || c.host != host || c.port != u.port) continue;
    if (!user.empty() && c.user != user) continue;
    if (!path_under(path, c.path)) continue;
    if (!best || c.path.size() > best->path.size()) best = &c;
  }
  return best;
}

bool known_host(const std::string& text, const std::string& host, int port, const std::string& key_blob) {
  const std::string name = lower(port == 22 ? host : "[" + host + "]:" + std::to_string(port));
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string names, type, key;
    if (!(fields >> names >> type >> key) || names[0] == '#' || names[0] == '@') continue;
    std::string blob;
    if (!base64_decode(key, &blob) || blob != key_blob || key_type(blob) != type) continue;
    if (names_match(names, name)) return true;
  }
  return false;
}

std::string fingerprint(const std::string& key_blob) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(key_blob.data(), key_blob.size(), digest, &len, EVP_sha256(), nullptr);
  std::string b64 = base64_encode(std::string_view(reinterpret_cast<const char*>(digest), len));
  while (!b64.empty() && b64.back() == '=') b64.pop_back();
  return "SHA256:" + b64;
}

std::string key_type(const std::string& key_blob) {
  if (key_blob.size() < 4) return "";
  const auto* b = reinterpret_cast<const unsigned char*>(key_blob.data());
  const size_t n = size_t{b[0]} << 24 | size_t{b[1]} << 16 | size_t{b[2]} << 8 | size_t{b[3]};
  return n == 0 || n > 64 || key_blob.size() < 4 + n ? "" : key_blob.substr(4, n);
}

bool set_auth(const Auth& auth, std::string* err) {
  Config next{auth, {}};
  if (!auth.ssh_key.empty()) {
    if (!check_file("--ssh-key", auth.ssh_key, true, err)) return false;
    if (!check_file("--ssh-key", auth.ssh_key + ".pub", false, err)) {
      *err += " (the public half of the key)";
      return false;
    }
    std::string text;
    if (read_file(auth.ssh_key, &text) && key_has_passphrase(text)) {
      *err = "--ssh-key: " + auth.ssh_key + " is protected by a passphrase, which a fetch cannot give; use a key " +
             "without one or leave --ssh-key out and add the key to an ssh-agent (SSH_AUTH_SOCK)";
      return false;
    }
  }
  if (!auth.known_hosts.empty() && !check_file("--ssh-known-hosts", auth.known_hosts, false, err)) return false;
  if (!auth.credentials_file.empty()) {
    std::string text;
    if (!check_file("--git-credentials", auth.credentials_file, true, err)) return false;
    if (!read_file(auth.credentials_file, &text)) {
      *err = "--git-credentials: cannot read " + auth.credentials_file;
      return false;
    }
    if (!parse_credentials(text, auth.credentials_file, &next.creds, err)) return false;
  }
  if (!auth.ca_file.empty() && !check_file("--ca-file", auth.ca_file, false, err)) return false;
  if (!auth.ca_file.empty() || !config().auth.ca_file.empty()) {
    // libgit2 must be initialised for its TLS settings; this reference is kept for the process.
    git_libgit2_init();
    // With mbedTLS (Debian's libgit2) the locations replace the default store, so the system's
    // folder goes with the file, which keeps the public CAs trusted; without a file (a CA given
    // before is dropped) the system's folder alone.
    std::error_code ec;
    const char* system_dir = std::filesystem::is_directory("/etc/ssl/certs", ec) ? "/etc/ssl/certs" : nullptr;
    const char* file = auth.ca_file.empty() ? nullptr : auth.ca_file.c_str();
    if ((file || system_dir) && git_libgit2_opts(GIT_OPT_SET_SSL_CERT_LOCATIONS, file, system_dir) != 0) {
      const ::git_error* e = git_error_last();
      *err = "--ca-file: cannot load " + auth.ca_file + ": " + one_line(e && e->message ? e->message : "unknown error");
      return false;
    }
  }
  config() = std::move(next);
  return true;
}

void add_auth_flags(CLI::App& app, Auth& auth) {
  app.add_option("--ssh-key", auth.ssh_key,
                 "private key for ssh:// and user@host:path repositories (its public half in FILE.pub; "
                 "default: the ssh-agent at SSH_AUTH_SOCK)");
  app.add_option("--ssh-known-hosts", auth.known_hosts, "known_hosts file for SSH host keys (default ~/.ssh/known_hosts)");
  app.add_option("--git-credentials", auth.credentials_file,
                 "https://user:token@host[:port][/path] lines for HTTPS repositories (git credential-store format, mode 600)");
  app.add_option("--ca-file", auth.ca_file, "a CA certificate (PEM) trusted for HTTPS besides the system's");
}

Session::Session(std::string url) : url_(std::move(url)), parts_(parse_url(url_)) {}

void Session::apply(git_remote_callbacks* cb) {
  cb->credentials = &Session::on_credentials;
  cb->certificate_check = &Session::on_certificate;
  cb->payload = this;
}

int Session::on_credentials(git_credential** out, const char* url, const char* user, unsigned int allowed,
                            void* payload) {
  return static_cast<Session*>(payload)->credentials(out, url ? url : "", user, allowed);
}

int Session::on_certificate(git_cert* cert, int valid, const char* host, void* payload) {
  return static_cast<Session*>(payload)->certificate(cert, valid, host ? host : "");
}

int Session::fail(std::string why) {
  failure_ = one_line(std::move(why));
  git_error_set_str(GIT_ERROR_NET, failure_.c_str());
  return GIT_EUSER;
}

int Session::credentials(git_credential** out, const std::string& url, const char* user, unsigned int allowed) {
  UrlParts u = parse_url(url);
  if (u.host.empty()) u = parts_;
  if (u.scheme == "ssh") {
    const std::string name = user && *user ? user : (u.user.empty() ? current_user() : u.user);
    // Only the user name is asked first: that is no attempt yet.
    if ((allowed & GIT_CREDENTIAL_USERNAME) && !(allowed & GIT_CREDENTIAL_SSH_KEY)) {
      return git_credential_username_new(out, name.c_str());
    }
    if (answered_.count(url)) return fail(refusal_);
    answered_.insert(url);
    if (!(allowed & GIT_CREDENTIAL_SSH_KEY)) return fail(u.host + " accepts no SSH key for user " + name);
    return ssh_credentials(out, u, name);
  }
  if (u.scheme == "https" || u.scheme == "http") {
    if (answered_.count(url)) return fail(refusal_);
    answered_.insert(url);
    return http_credentials(out, url, u);
  }
  return fail(url + " asks for credentials, which simpleCI gives only to ssh:// and https:// URLs");
}

int Session::ssh_credentials(git_credential** out, const UrlParts& u, const std::string& user) {
  const std::string& key = config().auth.ssh_key;
  if (!key.empty()) {
    refusal_ = "authentication to " + u.host + " failed with key " + key + " (user " + user + ")";
    if (git_credential_ssh_key_new(out, user.c_str(), (key + ".pub").c_str(), key.c_str(), "") != 0) {
      return fail(refusal_);
    }
    return 0;
  }
  const char* sock = std::getenv("SSH_AUTH_SOCK");
  if (!sock || !*sock) {
    return fail("no SSH key for " + u.host + ": give --ssh-key FILE or run an ssh-agent (SSH_AUTH_SOCK is not set)");
  }
  refusal_ = "authentication to " + u.host + " failed with the keys of the ssh-agent at " + sock + " (user " + user + ")";
  if (git_credential_ssh_key_from_agent(out, user.c_str()) != 0) return fail(refusal_);
  return 0;
}

int Session::http_credentials(git_credential** out, const std::string& url, const UrlParts& u) {
  const Config& cfg = config();
  if (cfg.auth.credentials_file.empty()) {
    return fail(u.host + " asks for a user and token for " + url + "; give them with --git-credentials FILE");
  }
  const Credential* c = match_credential(cfg.creds, url);
  if (!c) return fail(u.host + " asks for a user and token for " + url + " and " + cfg.auth.credentials_file + " has none");
  refusal_ = "authentication to " + u.host + " failed with the token for " + entry_text(*c);
  if (git_credential_userpass_plaintext_new(out, c->user.c_str(), c->token.c_str()) != 0) return fail(refusal_);
  return 0;
}

int Session::certificate(git_cert* cert, int valid, const std::string& host) {
  if (cert->cert_type == GIT_CERT_HOSTKEY_LIBSSH2) {
    const auto* hk = reinterpret_cast<const git_cert_hostkey*>(cert);
    const int port = lower(host) == lower(parts_.host) && parts_.port ? parts_.port : 22;
    const std::string file = known_hosts_file();
    if (!(hk->type & GIT_CERT_SSH_RAW) || !hk->hostkey) {
      return fail("host key of " + host + " cannot be checked against " + file + ": libgit2 gave no raw key");
    }
    const std::string blob(hk->hostkey, hk->hostkey_len);
    std::string text;
    if (read_file(file, &text) && known_host(text, host, port, blob)) return 0;
    return fail("host key of " + host + " (" + key_type(blob) + " " + fingerprint(blob) + ") is not in " + file +
                "; check it and add it (ssh-keyscan -p " + std::to_string(port) + " " + host + " >> " + file + ")");
  }
  if (valid) return 0;
  const ::git_error* e = git_error_last();
  const std::string why = e && e->message ? " (" + one_line(e->message) + ")" : "";
  return fail("the TLS certificate of " + host + " is not trusted" + why +
              "; if a private CA signed it, give it with --ca-file FILE");
}

}  // namespace simpleci::git
