#include "messages/skim.h"

#include <cstdint>

namespace simpleci::msg {

namespace {

// Big-endian unsigned of n bytes at p.
uint64_t be(const unsigned char* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

// What one lead byte says: how many bytes follow it before the payload (the length field or
// fixed-size content), where a length field tells the payload size, and how many child values
// follow when it is a container.
struct Lead {
  size_t fixed = 0;      // bytes after the lead byte that always follow (length field, ext type)
  size_t len_bytes = 0;  // of those, how many hold a payload length (0: no variable payload)
  size_t children = 0;   // container with a fixed child count (fixarray / fixmap)
  size_t count_bytes = 0;  // container whose child count is in the next count_bytes bytes
  size_t per_child = 1;  // 2 for maps (key and value)
  size_t inline_payload = 0;  // payload length known from the lead byte itself
  bool invalid = false;
};

Lead lead(unsigned char b) {
  Lead l;
  if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) return l;  // one byte
  if (b <= 0x8f) { l.children = b & 0x0f; l.per_child = 2; return l; }  // fixmap
  if (b <= 0x9f) { l.children = b & 0x0f; return l; }                   // fixarray
  if (b <= 0xbf) { l.inline_payload = b & 0x1f; return l; }             // fixstr
  switch (b) {
    case 0xc4: case 0xd9: l.fixed = l.len_bytes = 1; break;  // bin8, str8
    case 0xc5: case 0xda: l.fixed = l.len_bytes = 2; break;  // bin16, str16
    case 0xc6: case 0xdb: l.fixed = l.len_bytes = 4; break;  // bin32, str32
    case 0xc7: l.len_bytes = 1; l.fixed = 2; break;          // ext8: length, type
    case 0xc8: l.len_bytes = 2; l.fixed = 3; break;          // ext16
    case 0xc9: l.len_bytes = 4; l.fixed = 5; break;          // ext32
    case 0xca: l.inline_payload = 4; break;                  // float32
    case 0xcb: l.inline_payload = 8; break;                  // float64
    case 0xcc: case 0xd0: l.inline_payload = 1; break;       // (u)int8
    case 0xcd: case 0xd1: l.inline_payload = 2; break;       // (u)int16
    case 0xce: case 0xd2: l.inline_payload = 4; break;       // (u)int32
    case 0xcf: case 0xd3: l.inline_payload = 8; break;       // (u)int64
    case 0xd4: l.inline_payload = 2; break;                  // fixext1: type + 1
    case 0xd5: l.inline_payload = 3; break;
    case 0xd6: l.inline_payload = 5; break;
    case 0xd7: l.inline_payload = 9; break;
    case 0xd8: l.inline_payload = 17; break;
    case 0xdc: l.count_bytes = 2; break;                     // array16
    case 0xdd: l.count_bytes = 4; break;                     // array32
    case 0xde: l.count_bytes = 2; l.per_child = 2; break;    // map16
    case 0xdf: l.count_bytes = 4; l.per_child = 2; break;    // map32
    default: l.invalid = true; break;                        // 0xc1
  }
  return l;
}

}  // namespace

// Values still to read are only counted (no stack): a container adds its children to the count.
// Every value takes at least one byte, so a count larger than the bytes left is refused at once.
Skim skim_msgpack(std::string_view bytes, size_t max_objects) {
  Skim s;
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  size_t at = 0;
  uint64_t pending = 1;
  while (pending > 0) {
    if (at >= n) return s.error = "truncated", s;
    if (++s.objects > max_objects) return s.error = "too many objects", s;
    --pending;
    const Lead l = lead(p[at++]);
    if (l.invalid) return s.error = "reserved byte 0xc1", s;
    const size_t head = l.fixed + l.count_bytes;
    if (n - at < head) return s.error = "truncated", s;
    uint64_t payload = l.inline_payload;
    if (l.len_bytes) payload = be(p + at, l.len_bytes);
    uint64_t children = l.children;
    if (l.count_bytes) children = be(p + at, l.count_bytes);
    at += head;
    if (payload > n - at) return s.error = "length past the end of the frame", s;
    at += static_cast<size_t>(payload);
    pending += children * l.per_child;
    if (pending > n - at) return s.error = "more elements than bytes left", s;
  }
  s.end = at;
  return s;
}

}  // namespace simpleci::msg
