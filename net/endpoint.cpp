#include "net/endpoint.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>


namespace simpleci {

namespace {

bool valid_hostname(std::string_view h) {
  if (h.empty() || h.size() > 253 || h.front() == '-' || h.front() == '.') return false;
  return std::all_of(h.begin(), h.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
  });
}

bool valid_ipv6(std::string_view h) {
  in6_addr a;
  return inet_pton(AF_INET6, std::string(h).c_str(), &a) == 1;
}

// Splits "tcp://HOST:PORT"; fills host (without brackets) and port text.
bool split(std::string_view s, std::string* host, std::string* port, bool* bracketed,
           std::string* err) {
  constexpr std::string_view kScheme = "tcp://";
  if (s.substr(0, kScheme.size()) != kScheme) {
    *err = "endpoint must look like tcp://HOST:PORT or ipc://PATH, got '" + std::string(s) + "'";
    return false;
  }
  std::string_view rest = s.substr(kScheme.size());
  const size_t colon = rest.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    *err = "endpoint must look like tcp://HOST:PORT or ipc://PATH, got '" + std::string(s) + "'";
    return false;
  }
  std::string_view h = rest.substr(0, colon);
  *bracketed = h.size() >= 2 && h.front() == '[' && h.back() == ']';
  if (*bracketed) h = h.substr(1, h.size() - 2);
  *host = std::string(h);
  *port = std::string(rest.substr(colon + 1));
  return true;
}

bool parse_port(const std::string& p, int lo, int* out) {
  if (p.empty() || p.size() > 5) return false;
  int v = 0;
  auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
  if (ec != std::errc() || ptr != p.data() + p.size() || v < lo || v > 65535) return false;
  *out = v;
  return true;
}

constexpr std::string_view kIpcScheme = "ipc://";

std::string check_ipc(std::string_view s, std::string* err) {
  const std::string_view path = s.substr(kIpcScheme.size());
  const bool printable = std::all_of(path.begin(), path.end(), [](char c) {
    return static_cast<unsigned char>(c) >= 0x20 && c != 0x7f;
  });
  if (path.empty() || path.size() > kMaxIpcPath || !printable || path.back() == '/' ||
      path == "*") {
    *err = "ipc endpoint must be ipc://PATH with a socket file path of 1-" +
           std::to_string(kMaxIpcPath) + " printable bytes, got '" + std::string(s) + "'";
    return "";
  }
  return std::string(s);
}

std::string check(std::string_view s, bool bind, std::string* err) {
  if (s.starts_with(kIpcScheme)) return check_ipc(s, err);
  std::string host, port;
  bool bracketed = false;
  if (!split(s, &host, &port, &bracketed, err)) return "";
  const bool host_ok = bracketed ? valid_ipv6(host) : (valid_hostname(host) || (bind && host == "*"));
  if (!host_ok) {
    *err = "bad host '" + host + "' in endpoint '" + std::string(s) + "'";
    return "";
  }
  int p = 0;
  if (bind && (port == "*" || port == "0")) {
    return std::string(s.substr(0, s.size() - port.size())) + "*";
  }
  if (!parse_port(port, 1, &p)) {
    *err = "bad port '" + port + "' in endpoint '" + std::string(s) + "' (want 1-65535)";
    return "";
  }
  return std::string(s);
}

}  // namespace

std::string parse_connect_endpoint(std::string_view s, std::string* err) {
  return check(s, false, err);
}

std::string parse_bind_endpoint(std::string_view s, std::string* err) {
  return check(s, true, err);
}

std::string endpoint_from_host_port(std::string_view s, std::string* err) {
  if (s.substr(0, 6) == "tcp://") return parse_connect_endpoint(s, err);
  std::string e = parse_connect_endpoint("tcp://" + std::string(s), err);
  if (e.empty()) *err = "--dispatcher-server must be HOST:PORT, got '" + std::string(s) + "'";
  return e;
}

std::string resolve_dispatcher(const std::string& dispatcher, const std::string& dispatcher_server,
                               std::string* err) {
  if (!dispatcher.empty() && !dispatcher_server.empty()) {
    *err = "give --dispatcher or --dispatcher-server, not both";
    return "";
  }
  if (!dispatcher_server.empty()) return endpoint_from_host_port(dispatcher_server, err);
  if (!dispatcher.empty()) return parse_connect_endpoint(dispatcher, err);
  return std::string(kDefaultDispatcher);
}

bool is_loopback_endpoint(std::string_view endpoint) {
  if (endpoint.starts_with(kIpcScheme)) return true;
  std::string host, port, err;
  bool bracketed = false;
  if (!split(endpoint, &host, &port, &bracketed, &err)) return false;
  if (host == "localhost" || host == "::1") return true;
  in_addr a4;
  if (inet_pton(AF_INET, host.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  return false;
}

std::string ipc_path(std::string_view endpoint) {
  if (!endpoint.starts_with(kIpcScheme)) return "";
  return std::string(endpoint.substr(kIpcScheme.size()));
}

}  // namespace simpleci
