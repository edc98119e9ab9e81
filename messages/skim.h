// Reading msgpack bytes without unpacking them: one decoder of msgpack value headers
// (read_head), and the two readers built on it — the skimmer, which counts a body's values
// before decode_body() unpacks it, and peek(), which reads a body's type and request id.
//
// msgpack::unpack allocates one msgpack::object (24 bytes) per value however small its encoding
// is, so a 16 MiB frame of one-byte values would cost ~400 MB once unpacked, although every
// per-container limit holds. decode_body() skims first and refuses a frame whose object count is
// over a budget. None of these allocates, recurses, throws, or reads a byte past the input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace simpleci::msg {

// The header of the msgpack value at bytes[at]: its lead byte and the length or count fields
// that follow it.
struct Head {
  enum class Kind : uint8_t { kUint, kInt, kArray, kMap, kOther };
  const char* error = nullptr;  // "truncated", "reserved byte 0xc1"; the rest is then unset
  Kind kind = Kind::kOther;     // kUint: positive fixint, uint8..64; kInt: -fixint, int8..64
  size_t size = 0;              // bytes of the header (lead byte, length or count, ext type)
  uint64_t payload = 0;  // bytes after the header that belong to the value: str, bin and ext
                         // data, the bytes of a number (may run past the end: not checked)
  uint64_t count = 0;    // elements of an array; entries of a map (each a key and a value)
};
Head read_head(std::string_view bytes, size_t at);

// The non-negative integer at bytes[*at], moving *at past it; nullopt (and *at unchanged) when
// the value there is not one or is cut short. Signed encodings count when their value is not
// negative: msgpack-c unpacks them as unsigned, so the decoder accepts them where it wants one.
std::optional<uint64_t> read_uint(std::string_view bytes, size_t* at);

struct Skim {
  const char* error = nullptr;  // why the value is refused (static text); nullptr when fine
  size_t objects = 0;           // values seen (each array/map element, str, bin, int, ...)
  size_t end = 0;               // offset just past the value (valid when error == nullptr)
  bool ok() const { return error == nullptr; }
};

// Skims the msgpack value that starts at bytes[0]. Refuses: more than max_objects values,
// a length or element count that cannot fit in the bytes left, a truncated value, and the byte
// 0xc1 (never used by msgpack). Bytes after the value are not looked at (see Skim::end).
Skim skim_msgpack(std::string_view bytes, size_t max_objects);

// What can be read of a body without decoding it, for answering a message that is refused (by
// role, or for a bad field) with the request id it carried: the message type (0 when the body
// does not start as a msgpack array with a type) and, when that type is a request (its row in
// kMessageTypes says RequestId::kAsks: COMMIT and the *_REQUEST types) whose first field is a
// non-negative integer (read_uint), that request id (else 0). Reads at most the first 23 bytes.
struct Peeked {
  uint8_t type = 0;
  uint64_t request_id = 0;
};
Peeked peek(std::string_view body);

}  // namespace simpleci::msg
