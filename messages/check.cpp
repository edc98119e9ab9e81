// validate(): the Reader's rules (reader.h) applied to a message built in memory.
#include <limits>
#include <string>
#include <vector>

#include "messages/codec.h"
#include "messages/validate.h"

namespace simpleci::msg {

namespace {

struct Checker {
  std::string err;
  std::string where;
  void fail(const char* f, const std::string& why) {
    if (err.empty()) err = where + "." + f + ": " + why;
  }
  void u64(const char* f, uint64_t& x, uint64_t lo = 0,
           uint64_t hi = std::numeric_limits<uint64_t>::max()) {
    if (x < lo || x > hi) fail(f, "out of range");
  }
  void u32(const char* f, uint32_t& x, uint32_t lo = 0,
           uint32_t hi = std::numeric_limits<uint32_t>::max()) {
    if (x < lo || x > hi) fail(f, "out of range");
  }
  void i32(const char*, int32_t&) {}
  void time(const char* f, int64_t& x) {
    if (x < 0 || x > kMaxTimeMs) fail(f, "out of range");
  }
  void boolean(const char*, bool&) {}
  void name(const char* f, std::string& s) {
    if (!is_safe_name(s)) fail(f, "not a safe name");
  }
  void commit(const char* f, std::string& s, bool allow_empty) {
    if (!(allow_empty && s.empty()) && !is_commit_id(s)) fail(f, "not a commit id");
  }
  void branch(const char* f, std::string& s) {
    if (!is_valid_branch(s)) fail(f, "not a valid branch name");
  }
  void repo(const char* f, std::string& s) {
    if (!s.empty() && !is_safe_name(s)) fail(f, "not a repository name");
  }
  void names(const char* f, std::vector<std::string>& v, size_t max) {
    if (v.size() > max) fail(f, "too many elements");
    for (const auto& s : v) {
      if (!is_safe_name(s)) fail(f, "not a safe name");
    }
  }
  void text(const char* f, std::string& s, size_t max) {
    if (!is_valid_text(s, max)) fail(f, "too long or contains NUL");
  }
  void bytes(const char* f, std::string& s, size_t max) {
    if (s.size() > max) fail(f, "too long");
  }
  void status(const char* f, JobStatus& s, bool final_only) {
    const auto v = static_cast<uint8_t>(s);
    if (v > kMaxJobStatus || (final_only && v < 2)) fail(f, "not a valid status");
  }
  void error_code(const char* f, ErrorCode& c) {
    const auto v = static_cast<uint8_t>(c);
    if (v < 1 || v > kMaxErrorCode) fail(f, "not a valid code");
  }
  void ids(const char* f, std::vector<uint64_t>& v) {
    if (v.size() > kMaxListLen) fail(f, "too many elements");
    for (uint64_t id : v) {
      if (id == 0) fail(f, "job id 0");
    }
  }
  template <class T>
  void list(const char* f, std::vector<T>& v, size_t max) {
    if (v.size() > max) fail(f, "too many elements");
    for (T& e : v) e.fields(*this);
  }
};

}  // namespace

std::string validate(const Message& m) {
  Checker c;
  c.where = std::string(to_string(type_of(m)));
  // fields() is one list for reading and writing; the Checker only reads.
  std::visit([&](const auto& body) { const_cast<std::decay_t<decltype(body)>&>(body).fields(c); },
             m);
  return c.err;
}

}  // namespace simpleci::msg
