#include "web/query.h"

#include <charconv>

#include <boost/asio/ip/address.hpp>

#include "messages/limits.h"
#include "messages/validate.h"

namespace simpleci::web {

namespace {

std::optional<uint64_t> parse_u64(std::string_view s, uint64_t lo, uint64_t hi) {
  uint64_t v = 0;
  if (s.empty() || s.size() > 20) return std::nullopt;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < lo || v > hi) return std::nullopt;
  return v;
}

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> decode(std::string_view s, bool plus_is_space) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (s[i] == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

// Text for SVG: the few characters XML gives a meaning.
std::string xml_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace

std::optional<ListenAddress> parse_listen(std::string_view s, std::string* err) {
  std::string_view host, port;
  if (!s.empty() && s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') {
      *err = "expected [IPv6]:PORT, got '" + std::string(s) + "'";
      return std::nullopt;
    }
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string_view::npos || s.find(':') != colon) {
      *err = "expected HOST:PORT (an IPv6 address in brackets), got '" + std::string(s) + "'";
      return std::nullopt;
    }
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  auto p = parse_u64(port, 0, 65535);
  if (!p) {
    *err = "port must be a number 0..65535, got '" + std::string(port) + "'";
    return std::nullopt;
  }
  ListenAddress a;
  a.port = static_cast<uint16_t>(*p);
  if (host == "localhost") {
    a.host = "127.0.0.1";
    return a;
  }
  boost::system::error_code ec;
  auto addr = boost::asio::ip::make_address(std::string(host), ec);
  if (ec || (s.front() == '[') != addr.is_v6()) {
    *err = "'" + std::string(host) + "' is not an IPv4 address, [IPv6] address or localhost";
    return std::nullopt;
  }
  a.host = addr.to_string();
  return a;
}

std::optional<Target> parse_target(std::string_view target, std::string* err) {
  if (target.empty() || target.front() != '/') {
    *err = "the request target must be a path starting with '/'";
    return std::nullopt;
  }
  auto q = target.find('?');
  Target t;
  auto path = decode(target.substr(0, q), false);
  if (!path) {
    *err = "bad %-escape in the path";
    return std::nullopt;
  }
  t.path = *path;
  if (q == std::string_view::npos) return t;
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    auto amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (pair.empty()) continue;
    auto eq = pair.find('=');
    auto key = decode(pair.substr(0, eq), true);
    auto value = decode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1), true);
    if (!key || !value) {
      *err = "bad %-escape in the query";
      return std::nullopt;
    }
    t.query[*key] = *value;
  }
  return t;
}

std::optional<msg::JobsRequest> jobs_request(const std::map<std::string, std::string>& q,
                                             std::string* err) {
  msg::JobsRequest r;
  for (const auto& [key, value] : q) {
    if (key == "branch") {
      if (!value.empty() && !is_valid_branch(value)) {
        *err = "branch: '" + value + "' is not a valid branch name";
        return std::nullopt;
      }
      r.branch = value;
    } else if (key == "status") {
      std::string_view rest = value;
      while (!rest.empty()) {
        auto comma = rest.find(',');
        std::string_view word = rest.substr(0, comma);
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
        auto s = msg::job_status_from_string(word);
        if (!s) {
          *err = "status: '" + std::string(word) +
                 "' is not one of queued, running, passed, failed, timeout, cancelled, error";
          return std::nullopt;
        }
        r.statuses |= 1u << static_cast<unsigned>(*s);
      }
    } else if (key == "limit") {
      auto v = parse_u64(value, 1, msg::kMaxListLen);
      if (!v) {
        *err = "limit must be a number 1.." + std::to_string(msg::kMaxListLen) + ", got '" + value + "'";
        return std::nullopt;
      }
      r.limit = static_cast<uint32_t>(*v);
    } else if (key == "before") {
      auto v = parse_job_id(value);
      if (!v) {
        *err = "before must be a job id, got '" + value + "'";
        return std::nullopt;
      }
      r.before_job_id = *v;
    } else {
      *err = "unknown parameter '" + key + "' (branch, status, limit, before)";
      return std::nullopt;
    }
  }
  return r;
}

std::optional<uint64_t> parse_job_id(std::string_view s) { return parse_u64(s, 1, uint64_t{1} << 53); }

std::optional<uint64_t> parse_offset(std::string_view s) { return parse_u64(s, 0, msg::kMaxOffset); }

uint32_t final_status_bits() {
  uint32_t bits = 0;
  for (unsigned s = static_cast<unsigned>(msg::JobStatus::kPassed); s <= msg::kMaxJobStatus; ++s) {
    bits |= 1u << s;
  }
  return bits;
}

std::string badge_svg(std::string_view branch, std::string_view status) {
  std::string colour = status == "passed"                         ? "#2da44e"
                       : status == "failed" || status == "error"  ? "#cf222e"
                       : status == "timeout"                      ? "#bf8700"
                       : status == "running" || status == "queued" ? "#0969da"
                                                                  : "#8c959f";
  // About 7 px per character of Verdana 11 px, plus padding.
  size_t lw = 10 + 7 * branch.size(), rw = 10 + 7 * status.size(), w = lw + rw;
  std::string l = xml_escape(branch), r = xml_escape(status);
  auto n = [](size_t v) { return std::to_string(v); };
  return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + n(w) + "\" height=\"20\" role=\"img\" aria-label=\"" +
         l + ": " + r + "\"><title>" + l + ": " + r + "</title>" +
         "<rect width=\"" + n(lw) + "\" height=\"20\" fill=\"#555\"/>" +
         "<rect x=\"" + n(lw) + "\" width=\"" + n(rw) + "\" height=\"20\" fill=\"" + colour + "\"/>" +
         "<g fill=\"#fff\" text-anchor=\"middle\" font-family=\"Verdana,DejaVu Sans,sans-serif\" font-size=\"11\">" +
         "<text x=\"" + n(lw / 2) + "\" y=\"14\">" + l + "</text>" +
         "<text x=\"" + n(lw + rw / 2) + "\" y=\"14\">" + r + "</text></g></svg>\n";
}

}  // namespace simpleci::web
