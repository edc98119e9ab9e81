// Encoding and validating decoding of simpleCI messages.
//
// A message on the wire is two frames: a 4-byte header frame ("SCI" + protocol version byte)
// and one msgpack body (an array whose first element is the MessageType). A ROUTER sees the
// routing id in front of those two frames. decode() never throws and never trusts its input:
// every size is bounded before anything is allocated, every field is type- and range-checked,
// and the whole body must be consumed. A bad frame becomes a DecodeError value.
#pragma once

#include <string>
#include <string_view>

#include "messages/messages.h"
#include "messages/skim.h"  // peek(): a body's type and request id without decoding it

namespace simpleci::msg {

// The header frame every message starts with.
std::string header_frame();
inline constexpr size_t kHeaderSize = 4;

// Why a frame was rejected. Each value is also a counter name (to_string) shown by
// `simpleci status`, so keep the strings short and stable.
enum class DecodeError : uint8_t {
  kNone = 0,
  kFrameCount,     // not exactly header + body
  kBadHeader,      // header frame is not "SCI" + byte
  kVersion,        // header names another protocol version
  kMalformed,      // not msgpack, truncated, or over a size/depth limit
  kTrailingBytes,  // msgpack value followed by extra bytes
  kUnknownType,    // message type outside the known range
  kBadField,       // wrong arity, wrong type, or a value out of range
};
std::string_view to_string(DecodeError e);

struct Decoded {
  DecodeError error = DecodeError::kNone;
  std::string detail;   // for logs: which field and why ("job.commit: not 40/64 hex chars")
  Message message;      // valid only when error == kNone
  bool ok() const { return error == DecodeError::kNone; }
};

// Body bytes of one message. Never fails for a message that passes validate().
std::string encode(const Message& m);
// At least encode(m).size() (a few bytes more per value), found without encoding: what the
// event feed charges a subscriber's budget for an event it has not encoded yet.
size_t encoded_size_bound(const Message& m);

// Checks the header frame alone (used to answer a version mismatch with a clear ERROR).
DecodeError check_header(std::string_view header);

// Decodes one body frame (without header) and validates every field. A body of more than
// max_objects msgpack values is refused as kMalformed ("too many objects") before any is built;
// a receiver that only takes small messages (the dispatcher) passes kMaxRequestObjects.
Decoded decode_body(std::string_view body, size_t max_objects = kMaxObjects);

// Header check + decode_body.
Decoded decode(std::string_view header, std::string_view body, size_t max_objects = kMaxObjects);
// What the runner, the observer and the client say, in one line, when a frame from their
// dispatcher names another protocol version (d.error is kVersion).
std::string dispatcher_version_line(const Decoded& d);

// The field rules decode applies, checked on a message built in memory: "" when decode would
// accept its encoding, else a reason naming the field. Senders do not call it on their way out
// (their messages are built from checked values); the fuzzers do, on every message the decoder
// accepts and every message the dispatcher sends.
std::string validate(const Message& m);

}  // namespace simpleci::msg
