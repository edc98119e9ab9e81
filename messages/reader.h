// The decoding side of the field lists (bodies.h fields(v)): pulls one message's fields from an
// unpacked msgpack array in order, checking each one's type and range. Internal to the codec.
#pragma once

#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include <msgpack.hpp>

#include "messages/messages.h"

namespace simpleci::msg {

// Thrown by Reader for a field that is missing, of the wrong type or out of range; decode_body()
// turns it into DecodeError::kBadField with what() as the detail.
struct FieldError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Reader {
  const msgpack::object* items;
  uint32_t size;
  uint32_t pos = 0;
  std::string where;  // "job" / "status_reply.runners[3]" for error text

  [[noreturn]] void fail(const char* field, const std::string& why) const;
  const msgpack::object& next(const char* field);
  uint64_t uint_in(const char* field, uint64_t lo, uint64_t hi);
  int64_t int_in(const char* field, int64_t lo, int64_t hi);
  std::string raw_str(const char* field, msgpack::type::object_type want, size_t max);
  const msgpack::object& array_field(const char* f, size_t max);
  // Throws unless every field was read.
  void finish() const;

  void u64(const char* f, uint64_t& x, uint64_t lo = 0,
           uint64_t hi = std::numeric_limits<uint64_t>::max()) {
    x = uint_in(f, lo, hi);
  }
  void u32(const char* f, uint32_t& x, uint32_t lo = 0,
           uint32_t hi = std::numeric_limits<uint32_t>::max()) {
    x = static_cast<uint32_t>(uint_in(f, lo, hi));
  }
  void i32(const char* f, int32_t& x);
  void time(const char* f, int64_t& x) { x = int_in(f, 0, kMaxTimeMs); }
  void boolean(const char* f, bool& x);
  void name(const char* f, std::string& s);
  void commit(const char* f, std::string& s, bool allow_empty);
  void branch(const char* f, std::string& s);
  void repo(const char* f, std::string& s);  // "" or a safe name
  void names(const char* f, std::vector<std::string>& v, size_t max);  // safe names
  void text(const char* f, std::string& s, size_t max);
  void bytes(const char* f, std::string& s, size_t max) { s = raw_str(f, msgpack::type::BIN, max); }
  void status(const char* f, JobStatus& s, bool final_only);
  void error_code(const char* f, ErrorCode& c);
  void ids(const char* f, std::vector<uint64_t>& v);
  template <class T>
  void list(const char* f, std::vector<T>& v, size_t max) {
    const msgpack::object& o = array_field(f, max);
    v.clear();
    v.resize(o.via.array.size);
    for (uint32_t i = 0; i < o.via.array.size; ++i) {
      Reader sub = record(o.via.array.ptr[i], f, i);
      v[i].fields(sub);
      sub.finish();
    }
  }
  // A Reader of the record at field f[i] (which must be an array).
  Reader record(const msgpack::object& e, const char* f, uint32_t i) const;
};

}  // namespace simpleci::msg
