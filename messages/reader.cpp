#include "messages/reader.h"

#include "messages/validate.h"

namespace simpleci::msg {

void Reader::fail(const char* field, const std::string& why) const {
  throw FieldError(where + "." + field + ": " + why);
}

const msgpack::object& Reader::next(const char* field) {
  if (pos >= size) fail(field, "missing");
  return items[pos++];
}

uint64_t Reader::uint_in(const char* field, uint64_t lo, uint64_t hi) {
  const msgpack::object& o = next(field);
  if (o.type != msgpack::type::POSITIVE_INTEGER) fail(field, "not an unsigned integer");
  if (o.via.u64 < lo || o.via.u64 > hi) {
    fail(field, "out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]: " +
                    std::to_string(o.via.u64));
  }
  return o.via.u64;
}

int64_t Reader::int_in(const char* field, int64_t lo, int64_t hi) {
  const msgpack::object& o = next(field);
  int64_t x = 0;
  if (o.type == msgpack::type::POSITIVE_INTEGER) {
    if (o.via.u64 > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      fail(field, "out of range");
    }
    x = static_cast<int64_t>(o.via.u64);
  } else if (o.type == msgpack::type::NEGATIVE_INTEGER) {
    x = o.via.i64;
  } else {
    fail(field, "not an integer");
  }
  if (x < lo || x > hi) fail(field, "out of range: " + std::to_string(x));
  return x;
}

std::string Reader::raw_str(const char* field, msgpack::type::object_type want, size_t max) {
  const msgpack::object& o = next(field);
  if (o.type != want) fail(field, want == msgpack::type::BIN ? "not bin" : "not a string");
  const uint32_t n = want == msgpack::type::BIN ? o.via.bin.size : o.via.str.size;
  const char* p = want == msgpack::type::BIN ? o.via.bin.ptr : o.via.str.ptr;
  if (n > max) fail(field, "longer than " + std::to_string(max) + " bytes");
  return std::string(p, n);
}

const msgpack::object& Reader::array_field(const char* f, size_t max) {
  const msgpack::object& o = next(f);
  if (o.type != msgpack::type::ARRAY) fail(f, "not an array");
  if (o.via.array.size > max) fail(f, "more than " + std::to_string(max) + " elements");
  return o;
}

void Reader::finish() const {
  if (pos != size) {
    throw FieldError(where + ": expected " + std::to_string(pos) + " fields, got " +
                     std::to_string(size));
  }
}

void Reader::i32(const char* f, int32_t& x) {
  x = static_cast<int32_t>(
      int_in(f, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()));
}

void Reader::boolean(const char* f, bool& x) {
  const msgpack::object& o = next(f);
  if (o.type != msgpack::type::BOOLEAN) fail(f, "not a boolean");
  x = o.via.boolean;
}

void Reader::name(const char* f, std::string& s) {
  s = raw_str(f, msgpack::type::STR, kMaxNameLen);
  if (!is_safe_name(s)) fail(f, "not a safe name (1-64 of A-Z a-z 0-9 . _ -)");
}

void Reader::commit(const char* f, std::string& s, bool allow_empty) {
  s = raw_str(f, msgpack::type::STR, 64);
  if (!(allow_empty && s.empty()) && !is_commit_id(s)) {
    fail(f, "not a commit id (40 or 64 lowercase hex characters)");
  }
}

void Reader::branch(const char* f, std::string& s) {
  s = raw_str(f, msgpack::type::STR, kMaxBranchLen);
  if (!is_valid_branch(s)) fail(f, "not a valid branch name");
}

void Reader::repo(const char* f, std::string& s) {
  s = raw_str(f, msgpack::type::STR, kMaxNameLen);
  if (!s.empty() && !is_safe_name(s)) fail(f, "not a repository name (empty, or 1-64 of A-Z a-z 0-9 . _ -)");
}

void Reader::names(const char* f, std::vector<std::string>& v, size_t max) {
  const msgpack::object& o = array_field(f, max);
  v.clear();
  v.reserve(o.via.array.size);
  Reader sub{o.via.array.ptr, o.via.array.size, 0, where + "." + f};
  for (uint32_t i = 0; i < o.via.array.size; ++i) {
    std::string& s = v.emplace_back();
    sub.name("[]", s);
  }
}

void Reader::text(const char* f, std::string& s, size_t max) {
  s = raw_str(f, msgpack::type::STR, max);
  if (!is_valid_text(s, max)) fail(f, "contains NUL");
}

void Reader::status(const char* f, JobStatus& s, bool final_only) {
  s = static_cast<JobStatus>(uint_in(f, final_only ? 2 : 0, kMaxJobStatus));
}

void Reader::error_code(const char* f, ErrorCode& c) {
  c = static_cast<ErrorCode>(uint_in(f, 1, kMaxErrorCode));
}

void Reader::ids(const char* f, std::vector<uint64_t>& v) {
  const msgpack::object& o = array_field(f, kMaxListLen);
  v.clear();
  v.reserve(o.via.array.size);
  Reader sub{o.via.array.ptr, o.via.array.size, 0, where + "." + f};
  for (uint32_t i = 0; i < o.via.array.size; ++i) v.push_back(sub.uint_in("[]", 1, UINT64_MAX));
}

Reader Reader::record(const msgpack::object& e, const char* f, uint32_t i) const {
  const std::string at = where + "." + f + "[" + std::to_string(i) + "]";
  if (e.type != msgpack::type::ARRAY) throw FieldError(at + ": not an array");
  return Reader{e.via.array.ptr, e.via.array.size, 0, at};
}

}  // namespace simpleci::msg
