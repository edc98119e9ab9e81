#include "tools/bench/http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <poll.h>
#include <unistd.h>

#include <sys/uio.h>

#include <chrono>
#include <ctime>

#include <cerrno>
#include <cstring>
#include <fcntl.h>

namespace simpleci::bench {

HttpGet::~HttpGet() { close(); }

void HttpGet::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool HttpGet::open(int port, const std::string& path, int rcvbuf) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return false;
  if (rcvbuf > 0 && ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0) {
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n";
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::send(fd_, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    error_ = std::strerror(errno);
    close();
    return false;
  }
  ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
  return true;
}

void HttpGet::stamp_arrivals() {
  const int on = 1;
  if (fd_ >= 0) ::setsockopt(fd_, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
}

int HttpGet::receive_buffer() const {
  int got = 0;
  socklen_t len = sizeof got;
  return fd_ >= 0 && ::getsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &got, &len) == 0 ? got : 0;
}

bool HttpGet::read_some(size_t max, std::string* body) {
  if (fd_ < 0) return false;
  char buf[65536];
  iovec iov{buf, std::min(max, sizeof buf)};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(timespec))];
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = control;
  m.msg_controllen = sizeof control;
  const ssize_t n = ::recvmsg(fd_, &m, 0);
  // TCP stamps a read with the arrival of the last segment it took bytes from.
  for (cmsghdr* c = CMSG_FIRSTHDR(&m); n > 0 && c; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
      timespec ts;
      std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
      rx_ns_ = int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
    }
  }
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return true;
    error_ = std::strerror(errno);
    return false;
  }
  if (n == 0) {
    if (!chunked_ && length_ < 0 && status_ != 0) ended_ = true;  // the body ends with the connection
    if (!ended_) error_ = "connection closed";
    return false;
  }
  raw_.append(buf, static_cast<size_t>(n));
  if (status_ == 0 && !parse_headers()) return status_ == 0 && error_.empty();
  decode(body);
  return error_.empty() && !ended_;
}

bool HttpGet::parse_headers() {
  const size_t end = raw_.find("\r\n\r\n");
  if (end == std::string::npos) return false;
  std::string head = raw_.substr(0, end + 2);
  raw_.erase(0, end + 4);
  if (head.compare(0, 9, "HTTP/1.1 ") != 0 || head.size() < 12) {
    error_ = "not an HTTP/1.1 response";
    return false;
  }
  status_ = std::atoi(head.c_str() + 9);
  for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  chunked_ = head.find("\r\ntransfer-encoding: chunked\r\n") != std::string::npos;
  const size_t cl = head.find("\r\ncontent-length: ");
  if (cl != std::string::npos) length_ = std::atoll(head.c_str() + cl + 18);
  if (!chunked_ && length_ == 0) ended_ = true;
  return true;
}

void HttpGet::decode(std::string* body) {
  if (!chunked_) {
    received_ += raw_.size();
    body->append(raw_);
    raw_.clear();
    if (length_ >= 0 && received_ >= static_cast<uint64_t>(length_)) ended_ = true;
    return;
  }
  while (!raw_.empty() && !ended_) {
    if (in_chunk_) {
      const size_t take = static_cast<size_t>(std::min<uint64_t>(chunk_left_, raw_.size()));
      body->append(raw_, 0, take);
      raw_.erase(0, take);
      chunk_left_ -= take;
      if (chunk_left_ > 0) return;
      if (raw_.size() < 2) return;  // the CRLF after the chunk
      raw_.erase(0, 2);
      in_chunk_ = false;
      continue;
    }
    const size_t eol = raw_.find("\r\n");
    if (eol == std::string::npos) return;
    chunk_left_ = std::strtoull(raw_.c_str(), nullptr, 16);
    raw_.erase(0, eol + 2);
    if (chunk_left_ == 0) {
      ended_ = true;  // trailers, if any, are not read
      return;
    }
    in_chunk_ = true;
  }
}

int http_get(int port, const std::string& path, int timeout_ms, std::string* body) {
  HttpGet g;
  if (!g.open(port, path)) return 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!g.ended()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{g.fd(), POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) return 0;
    if (!g.read_some(1 << 20, body) && !g.ended()) return 0;
  }
  return g.status();
}

void SseParser::feed(const std::string& bytes) {
  for (char c : bytes) {
    if (c != '\n') {
      if (c != '\r') line_ += c;
      continue;
    }
    if (line_.empty()) {
      if (!event_.empty() || !data_.empty()) fn_(event_.empty() ? "message" : event_, data_);
      event_.clear();
      data_.clear();
    } else if (line_.rfind("event:", 0) == 0) {
      event_ = line_.substr(line_.size() > 6 && line_[6] == ' ' ? 7 : 6);
    } else if (line_.rfind("data:", 0) == 0) {
      if (!data_.empty()) data_ += '\n';
      data_ += line_.substr(line_.size() > 5 && line_[5] == ' ' ? 6 : 5);
    }
    line_.clear();
  }
}

}  // namespace simpleci::bench
