// A small HTTP/1.1 client for the web benchmark: one GET per connection over loopback, read
// without blocking as the caller's poll() says, the body decoded (chunked or not) as it comes,
// and an SSE parser on top. It reads only what the caller asks for, so a benchmark can play a
// slow reader, a stalled one or one that vanishes.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace simpleci::bench {

class HttpGet {
 public:
  HttpGet() = default;
  ~HttpGet();
  HttpGet(const HttpGet&) = delete;
  HttpGet& operator=(const HttpGet&) = delete;

  // Connects to 127.0.0.1:port and sends GET path. rcvbuf > 0 sets the socket's receive buffer
  // before it connects (SO_RCVBUFFORCE when allowed): small, a reader that does not read makes
  // the server's writes wait; large, the server never waits for this reader. False on failure.
  bool open(int port, const std::string& path, int rcvbuf = 0);
  int fd() const { return fd_; }
  // Reads at most max bytes from the socket (without blocking) and appends the body bytes they
  // complete to *body. False when the connection ended or failed (ended() tells which).
  bool read_some(size_t max, std::string* body);
  void close();
  // Asks the kernel to stamp what arrives (SO_TIMESTAMPNS): from then on rx_time() is when the
  // last bytes read_some() returned reached this socket, however late this process read them.
  void stamp_arrivals();
  // The receive buffer the kernel gave (after open()'s rcvbuf), in bytes.
  int receive_buffer() const;
  // CLOCK_REALTIME nanoseconds of that arrival; 0 when nothing stamped was read yet.
  int64_t rx_time_ns() const { return rx_ns_; }

  int status() const { return status_; }        // 0 until the headers are in
  bool ended() const { return ended_; }          // the whole body arrived
  const std::string& error() const { return error_; }

 private:
  bool parse_headers();
  void decode(std::string* body);

  int fd_ = -1;
  std::string raw_;  // bytes not decoded yet
  int status_ = 0;
  bool chunked_ = false;
  int64_t length_ = -1;       // Content-Length, -1 when none
  uint64_t chunk_left_ = 0;   // bytes left in the current chunk
  bool in_chunk_ = false;
  bool ended_ = false;
  uint64_t received_ = 0;     // body bytes so far
  int64_t rx_ns_ = 0;         // see rx_time_ns()
  std::string error_;
};

// GET path from 127.0.0.1:port, whole, waiting at most timeout_ms: the status (0 when no
// complete response came in time) and the body.
int http_get(int port, const std::string& path, int timeout_ms, std::string* body);

// Splits an event stream into events: fn(event name, data) for each (comments skipped).
class SseParser {
 public:
  explicit SseParser(std::function<void(const std::string&, const std::string&)> fn) : fn_(std::move(fn)) {}
  void feed(const std::string& bytes);

 private:
  std::function<void(const std::string&, const std::string&)> fn_;
  std::string line_, event_, data_;
};

}  // namespace simpleci::bench
