// A msgpack skimmer: walks the bytes of one msgpack value without building it, to learn how many
// objects unpacking it would create before anything is allocated.
//
// msgpack::unpack allocates one msgpack::object (24 bytes) per value however small its encoding
// is, so a 16 MiB frame of one-byte values would cost ~400 MB once unpacked, although every
// per-container limit holds. decode_body() skims first and refuses a frame whose object count is
// over a budget. The skimmer never allocates, never recurses and reads each byte at most once.
#pragma once

#include <cstddef>
#include <string_view>

namespace simpleci::msg {

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

}  // namespace simpleci::msg
