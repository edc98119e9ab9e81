#include "messages/codec.h"

#include <array>
#include <new>
#include <optional>
#include <utility>

#include <msgpack.hpp>

#include "messages/reader.h"
#include "messages/skim.h"

namespace simpleci::msg {

namespace {

// Encoding and decoding run each struct's field list (bodies.h fields(v)) with a visitor:
// FieldCounter and SizeBound size the output, Writer packs it; reader.h's Reader decodes.

// --- Counting visitor: number of fields, so the writer can emit the array header first. ---
struct FieldCounter {
  uint32_t n = 0;
  template <class... A> void u64(A&&...) { ++n; }
  template <class... A> void u32(A&&...) { ++n; }
  template <class... A> void i32(A&&...) { ++n; }
  template <class... A> void time(A&&...) { ++n; }
  template <class... A> void boolean(A&&...) { ++n; }
  template <class... A> void name(A&&...) { ++n; }
  template <class... A> void commit(A&&...) { ++n; }
  template <class... A> void branch(A&&...) { ++n; }
  template <class... A> void repo(A&&...) { ++n; }
  template <class... A> void names(A&&...) { ++n; }
  template <class... A> void text(A&&...) { ++n; }
  template <class... A> void bytes(A&&...) { ++n; }
  template <class... A> void status(A&&...) { ++n; }
  template <class... A> void error_code(A&&...) { ++n; }
  template <class... A> void ids(A&&...) { ++n; }
  template <class... A> void list(A&&...) { ++n; }
};

template <class T>
uint32_t field_count(const T& m) {
  FieldCounter c;
  const_cast<T&>(m).fields(c);
  return c.n;
}

// --- SizeBound: an upper bound of the encoded size, so encode() allocates once. ---
struct SizeBound {
  size_t n = 0;
  static constexpr size_t kHeader = 9;  // the largest msgpack header of any one value
  template <class... A> void u64(A&&...) { n += kHeader; }
  template <class... A> void u32(A&&...) { n += kHeader; }
  template <class... A> void i32(A&&...) { n += kHeader; }
  template <class... A> void time(A&&...) { n += kHeader; }
  template <class... A> void boolean(A&&...) { n += kHeader; }
  template <class... A> void status(A&&...) { n += kHeader; }
  template <class... A> void error_code(A&&...) { n += kHeader; }
  template <class... A> void name(const char*, std::string& s, A&&...) { n += kHeader + s.size(); }
  template <class... A> void commit(const char*, std::string& s, A&&...) { n += kHeader + s.size(); }
  template <class... A> void branch(const char*, std::string& s, A&&...) { n += kHeader + s.size(); }
  void repo(const char*, std::string& s) { n += kHeader + s.size(); }
  void names(const char*, std::vector<std::string>& v, size_t) {
    n += kHeader;
    for (const auto& s : v) n += kHeader + s.size();
  }
  template <class... A> void text(const char*, std::string& s, A&&...) { n += kHeader + s.size(); }
  template <class... A> void bytes(const char*, std::string& s, A&&...) { n += kHeader + s.size(); }
  void ids(const char*, std::vector<uint64_t>& v) { n += kHeader * (1 + v.size()); }
  template <class T>
  void list(const char*, std::vector<T>& v, size_t) {
    n += kHeader;
    for (T& e : v) {
      n += kHeader;
      e.fields(*this);
    }
  }
};

// msgpack output straight into a std::string (no second copy at the end).
struct StringBuffer {
  std::string out;
  void write(const char* p, size_t len) { out.append(p, len); }
};

// --- Writer ---
struct Writer {
  msgpack::packer<StringBuffer>& pk;

  void u64(const char*, uint64_t& x, uint64_t = 0, uint64_t = 0) { pk.pack_uint64(x); }
  void u32(const char*, uint32_t& x, uint32_t = 0, uint32_t = 0) { pk.pack_uint32(x); }
  void i32(const char*, int32_t& x) { pk.pack_int32(x); }
  void time(const char*, int64_t& x) { pk.pack_int64(x); }
  void boolean(const char*, bool& x) { x ? pk.pack_true() : pk.pack_false(); }
  void str(const std::string& s) {
    pk.pack_str(static_cast<uint32_t>(s.size()));
    pk.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
  }
  void name(const char*, std::string& s) { str(s); }
  void commit(const char*, std::string& s, bool) { str(s); }
  void branch(const char*, std::string& s) { str(s); }
  void repo(const char*, std::string& s) { str(s); }
  void names(const char*, std::vector<std::string>& v, size_t) {
    pk.pack_array(static_cast<uint32_t>(v.size()));
    for (const auto& s : v) str(s);
  }
  void text(const char*, std::string& s, size_t) { str(s); }
  void bytes(const char*, std::string& s, size_t) {
    pk.pack_bin(static_cast<uint32_t>(s.size()));
    pk.pack_bin_body(s.data(), static_cast<uint32_t>(s.size()));
  }
  void status(const char*, JobStatus& s, bool) { pk.pack_uint8(static_cast<uint8_t>(s)); }
  void error_code(const char*, ErrorCode& c) { pk.pack_uint8(static_cast<uint8_t>(c)); }
  void ids(const char*, std::vector<uint64_t>& v) {
    pk.pack_array(static_cast<uint32_t>(v.size()));
    for (uint64_t id : v) pk.pack_uint64(id);
  }
  template <class T>
  void list(const char*, std::vector<T>& v, size_t) {
    pk.pack_array(static_cast<uint32_t>(v.size()));
    for (T& e : v) {
      pk.pack_array(field_count(e));
      e.fields(*this);
    }
  }
};

// Strings and binary payloads are referenced in the frame rather than copied into msgpack's
// zone: the frame outlives decoding, and a 16 MiB output is then copied once (into the message),
// not twice.
bool reference_payloads(msgpack::type::object_type, std::size_t, void*) { return true; }

const msgpack::unpack_limit kLimits(
    /*array=*/kMaxListLen + 16, /*map=*/0, /*str=*/kMaxTextLen, /*bin=*/kMaxOutputCap,
    /*ext=*/0, /*depth=*/kMaxDepth);

// Builds the alternative of wire type t (already range-checked): the variant's alternatives are
// the table's rows in wire order, so index t - 1.
template <size_t... I>
constexpr auto message_factories(std::index_sequence<I...>) {
  return std::array<Message (*)(), sizeof...(I)>{+[] { return Message(std::in_place_index<I>); }...};
}
Message make_message(MessageType t) {
  static constexpr auto kMake =
      message_factories(std::make_index_sequence<std::variant_size_v<Message>>());
  return kMake[static_cast<size_t>(t) - 1]();
}

}  // namespace

std::string_view to_string(DecodeError e) {
  static constexpr std::string_view kNames[] = {"ok",        "frame_count",    "bad_header",
                                                "version",   "malformed",      "trailing_bytes",
                                                "unknown_type", "bad_field"};
  const auto i = static_cast<size_t>(e);
  return i < std::size(kNames) ? kNames[i] : "?";
}

std::string header_frame() { return std::string("SCI") + static_cast<char>(kProtocolVersion); }

DecodeError check_header(std::string_view header) {
  if (header.size() != kHeaderSize || header.substr(0, 3) != "SCI") return DecodeError::kBadHeader;
  if (static_cast<uint8_t>(header[3]) != kProtocolVersion) return DecodeError::kVersion;
  return DecodeError::kNone;
}

std::string encode(const Message& m) {
  StringBuffer buf;
  msgpack::packer<StringBuffer> pk(buf);
  std::visit(
      [&](const auto& body) {
        auto& b = const_cast<std::decay_t<decltype(body)>&>(body);
        SizeBound bound;
        b.fields(bound);
        buf.out.reserve(bound.n + 16);  // one allocation, even for a 16 MiB output
        pk.pack_array(1 + field_count(body));
        pk.pack_uint8(static_cast<uint8_t>(type_of(m)));
        Writer w{pk};
        b.fields(w);
      },
      m);
  return std::move(buf.out);
}

size_t encoded_size_bound(const Message& m) {
  return std::visit(
      [](const auto& body) {
        SizeBound bound;
        const_cast<std::decay_t<decltype(body)>&>(body).fields(bound);
        return bound.n + 2 * SizeBound::kHeader;  // the array header and the type
      },
      m);
}

namespace {

Decoded rejected(DecodeError e, std::string detail) {
  Decoded out;
  out.error = e;
  out.detail = std::move(detail);
  return out;
}

// Bounds, skims and unpacks body into oh: the rejection when it fails, else nullopt.
std::optional<Decoded> unpack_body(std::string_view body, size_t max_objects,
                                   msgpack::object_handle& oh) {
  if (body.empty()) return rejected(DecodeError::kMalformed, "empty body");
  if (body.size() > static_cast<size_t>(kMaxFrameBytes)) {
    return rejected(DecodeError::kMalformed, "body larger than the frame limit");
  }
  // Count the values first: unpacking allocates for each, and the per-container limits below do
  // not bound their total.
  if (const Skim sk = skim_msgpack(body, max_objects); !sk.ok()) {
    return rejected(DecodeError::kMalformed, std::string("msgpack: ") + sk.error);
  }
  std::size_t offset = 0;
  try {
    msgpack::unpack(oh, body.data(), body.size(), offset, reference_payloads, nullptr, kLimits);
  } catch (const std::bad_alloc&) {
    return rejected(DecodeError::kMalformed, "out of memory while unpacking");
  } catch (const std::exception& e) {
    return rejected(DecodeError::kMalformed, std::string("msgpack: ") + e.what());
  }
  if (offset != body.size()) {
    return rejected(DecodeError::kTrailingBytes,
                    std::to_string(body.size() - offset) + " bytes after the message");
  }
  return std::nullopt;
}

// The message an unpacked body holds: [type, field, ...].
Decoded read_message(const msgpack::object& root) {
  if (root.type != msgpack::type::ARRAY || root.via.array.size == 0) {
    return rejected(DecodeError::kMalformed, "body is not a non-empty array");
  }
  const msgpack::object& t = root.via.array.ptr[0];
  if (t.type != msgpack::type::POSITIVE_INTEGER || t.via.u64 < kMinMessageType ||
      t.via.u64 > kMaxMessageType) {
    return rejected(DecodeError::kUnknownType, "unknown message type");
  }
  const auto type = static_cast<MessageType>(t.via.u64);
  Decoded out;
  try {
    out.message = make_message(type);
    std::visit(
        [&](auto& m) {
          Reader r{root.via.array.ptr + 1, root.via.array.size - 1, 0, std::string(to_string(type))};
          m.fields(r);
          r.finish();
        },
        out.message);
  } catch (const FieldError& e) {
    return rejected(DecodeError::kBadField, e.what());
  } catch (const std::bad_alloc&) {
    return rejected(DecodeError::kMalformed, "out of memory while decoding");
  }
  return out;
}

}  // namespace

Decoded decode_body(std::string_view body, size_t max_objects) {
  msgpack::object_handle oh;
  if (std::optional<Decoded> bad = unpack_body(body, max_objects, oh)) return std::move(*bad);
  return read_message(oh.get());
}

std::string dispatcher_version_line(const Decoded& d) {
  return "the dispatcher speaks " + d.detail + ": run the same simpleCI version on both";
}

Decoded decode(std::string_view header, std::string_view body, size_t max_objects) {
  if (const DecodeError e = check_header(header); e != DecodeError::kNone) {
    Decoded out;
    out.error = e;
    out.detail = e == DecodeError::kVersion
                     ? "protocol version " + std::to_string(static_cast<uint8_t>(header[3])) +
                           ", this build speaks " + std::to_string(kProtocolVersion)
                     : "header frame is not SCI+version";
    return out;
  }
  return decode_body(body, max_objects);
}

}  // namespace simpleci::msg
