// Parsing and checking of ZeroMQ endpoints given on the command line.
#pragma once

#include <string>
#include <string_view>

namespace simpleci {

inline constexpr std::string_view kDefaultDispatcher = "tcp://127.0.0.1:8888";

// Accepts "tcp://HOST:PORT" where HOST is a name, an IPv4 address or "[IPv6]" and PORT is
// 1..65535, or "ipc://PATH" (a Unix socket; PATH at most kMaxIpcPath bytes, printable, not
// ending in '/'). Returns the endpoint unchanged, or "" with *err naming the problem.
std::string parse_connect_endpoint(std::string_view s, std::string* err);

// As parse_connect_endpoint, but for tcp:// PORT may be 0 or '*' (the OS picks a free port) and HOST may
// be '*' (all interfaces). Returns the string to hand to zmq bind (port 0 becomes '*').
std::string parse_bind_endpoint(std::string_view s, std::string* err);

// The original simpleCI spelling: "HOST:PORT" (as in --dispatcher-server=localhost:8888).
std::string endpoint_from_host_port(std::string_view s, std::string* err);

// Resolves the pair of flags every client takes. At most one may be non-empty; when both are
// empty the default dispatcher endpoint is used.
std::string resolve_dispatcher(const std::string& dispatcher, const std::string& dispatcher_server,
                               std::string* err);

// True when the host part of a tcp:// endpoint is a loopback address or "localhost", and for
// every ipc:// endpoint (only this host can reach a Unix socket; its folder decides who).
bool is_loopback_endpoint(std::string_view endpoint);

// Longest ipc:// path: a Unix socket address holds 107 bytes and a NUL.
inline constexpr size_t kMaxIpcPath = 107;

// The socket path of an "ipc://PATH" endpoint; "" for any other endpoint.
std::string ipc_path(std::string_view endpoint);

}  // namespace simpleci
