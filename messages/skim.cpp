#include "messages/skim.h"

#include "messages/messages.h"

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
  Head::Kind kind = Head::Kind::kOther;
  size_t fixed = 0;      // bytes after the lead byte that always follow (length field, ext type)
  size_t len_bytes = 0;  // of those, how many hold a payload length (0: no variable payload)
  size_t children = 0;   // container with a fixed child count (fixarray / fixmap)
  size_t count_bytes = 0;  // container whose child count is in the next count_bytes bytes
  size_t inline_payload = 0;  // payload length known from the lead byte itself
  bool invalid = false;
};

// The lead bytes whose meaning is in the byte itself (fixint, fixmap, fixarray, fixstr, ...).
bool lead_of_fixed(unsigned char b, Lead& l) {
  using K = Head::Kind;
  if (b <= 0x7f) return l.kind = K::kUint, true;                       // positive fixint
  if (b >= 0xe0) return l.kind = K::kInt, true;                        // negative fixint
  if (b == 0xc0 || b == 0xc2 || b == 0xc3) return true;                // nil, bool
  if (b <= 0x8f) return l.kind = K::kMap, l.children = b & 0x0f, true;  // fixmap
  if (b <= 0x9f) return l.kind = K::kArray, l.children = b & 0x0f, true;  // fixarray
  if (b <= 0xbf) return l.inline_payload = b & 0x1f, true;             // fixstr
  return false;
}

Lead lead(unsigned char b) {
  using K = Head::Kind;
  Lead l;
  if (lead_of_fixed(b, l)) return l;
  switch (b) {
    case 0xc4: case 0xd9: l.fixed = l.len_bytes = 1; break;  // bin8, str8
    case 0xc5: case 0xda: l.fixed = l.len_bytes = 2; break;  // bin16, str16
    case 0xc6: case 0xdb: l.fixed = l.len_bytes = 4; break;  // bin32, str32
    case 0xc7: l.len_bytes = 1; l.fixed = 2; break;          // ext8: length, type
    case 0xc8: l.len_bytes = 2; l.fixed = 3; break;          // ext16
    case 0xc9: l.len_bytes = 4; l.fixed = 5; break;          // ext32
    case 0xca: l.inline_payload = 4; break;                  // float32
    case 0xcb: l.inline_payload = 8; break;                  // float64
    case 0xcc: l.kind = K::kUint; l.inline_payload = 1; break;  // uint8
    case 0xcd: l.kind = K::kUint; l.inline_payload = 2; break;  // uint16
    case 0xce: l.kind = K::kUint; l.inline_payload = 4; break;  // uint32
    case 0xcf: l.kind = K::kUint; l.inline_payload = 8; break;  // uint64
    case 0xd0: l.kind = K::kInt; l.inline_payload = 1; break;                  // int8
    case 0xd1: l.kind = K::kInt; l.inline_payload = 2; break;                  // int16
    case 0xd2: l.kind = K::kInt; l.inline_payload = 4; break;                  // int32
    case 0xd3: l.kind = K::kInt; l.inline_payload = 8; break;                  // int64
    case 0xd4: l.inline_payload = 2; break;                  // fixext1: type + 1
    case 0xd5: l.inline_payload = 3; break;
    case 0xd6: l.inline_payload = 5; break;
    case 0xd7: l.inline_payload = 9; break;
    case 0xd8: l.inline_payload = 17; break;
    case 0xdc: l.kind = K::kArray; l.count_bytes = 2; break;  // array16
    case 0xdd: l.kind = K::kArray; l.count_bytes = 4; break;  // array32
    case 0xde: l.kind = K::kMap; l.count_bytes = 2; break;    // map16
    case 0xdf: l.kind = K::kMap; l.count_bytes = 4; break;    // map32
    default: l.invalid = true; break;                        // 0xc1
  }
  return l;
}

}  // namespace

Head read_head(std::string_view bytes, size_t at) {
  Head h;
  if (at >= bytes.size()) return h.error = "truncated", h;
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data()) + at;
  const Lead l = lead(p[0]);
  if (l.invalid) return h.error = "reserved byte 0xc1", h;
  h.size = 1 + l.fixed + l.count_bytes;
  if (bytes.size() - at < h.size) return h.error = "truncated", h;
  h.kind = l.kind;
  h.payload = l.len_bytes ? be(p + 1, l.len_bytes) : l.inline_payload;
  h.count = l.count_bytes ? be(p + 1, l.count_bytes) : l.children;
  return h;
}

std::optional<uint64_t> read_uint(std::string_view bytes, size_t* at) {
  const Head h = read_head(bytes, *at);
  const bool integer = h.kind == Head::Kind::kUint || h.kind == Head::Kind::kInt;
  if (h.error || !integer || h.payload > bytes.size() - *at - h.size) return std::nullopt;
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data()) + *at;
  const uint64_t v = h.payload == 0 ? p[0] : be(p + 1, h.payload);
  // A signed value is negative when its top bit is set (a negative fixint always is).
  const unsigned bits = h.payload == 0 ? 8 : 8 * static_cast<unsigned>(h.payload);
  if (h.kind == Head::Kind::kInt && ((v >> (bits - 1)) & 1) != 0) return std::nullopt;
  *at += h.size + h.payload;
  return v;
}

// Values still to read are only counted (no stack): a container adds its children to the count.
// Every value takes at least one byte, so a count larger than the bytes left is refused at once.
Skim skim_msgpack(std::string_view bytes, size_t max_objects) {
  Skim s;
  const size_t n = bytes.size();
  size_t at = 0;
  uint64_t pending = 1;
  while (pending > 0) {
    if (at >= n) return s.error = "truncated", s;
    if (++s.objects > max_objects) return s.error = "too many objects", s;
    --pending;
    const Head h = read_head(bytes, at);
    if (h.error) return s.error = h.error, s;
    at += h.size;
    if (h.payload > n - at) return s.error = "length past the end of the frame", s;
    at += static_cast<size_t>(h.payload);
    pending += h.kind == Head::Kind::kMap ? 2 * h.count : h.count;
    if (pending > n - at) return s.error = "more elements than bytes left", s;
  }
  s.end = at;
  return s;
}

Peeked peek(std::string_view body) {
  Peeked out;
  const Head array = read_head(body, 0);
  if (array.error || array.kind != Head::Kind::kArray || array.count < 1) return out;
  size_t at = array.size;
  const std::optional<uint64_t> type = read_uint(body, &at);
  if (!type || *type > 0xff) return out;
  out.type = static_cast<uint8_t>(*type);
  const TypeInfo* info = type_info(out.type);
  if (info && info->request_id == RequestId::kAsks) out.request_id = read_uint(body, &at).value_or(0);
  return out;
}

}  // namespace simpleci::msg
