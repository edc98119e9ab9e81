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

// Checks the header frame alone (used to answer a version mismatch with a clear ERROR).
DecodeError check_header(std::string_view header);

// Decodes one body frame (without header) and validates every field. A body of more than
// max_objects msgpack values is refused as kMalformed ("too many objects") before any is built;
// a receiver that only takes small messages (the dispatcher) passes kMaxRequestObjects.
Decoded decode_body(std::string_view body, size_t max_objects = kMaxObjects);

// Header check + decode_body.
Decoded decode(std::string_view header, std::string_view body, size_t max_objects = kMaxObjects);

// What can be read of a body without decoding it, for answering a message that is refused (by
// role, or for a bad field) with the request id it carried: the message type (0 when the body
// does not start as a msgpack array with a type) and, when that type is a request (COMMIT,
// STATUS_REQUEST, RESULTS_REQUEST, CANCEL_REQUEST, RETRY_REQUEST, WATCH_REQUEST,
// PRUNE_REQUEST) whose first field is a positive integer, that request id (else 0). Reads at
// most the first 16 bytes; never throws.
struct Peeked {
  uint8_t type = 0;
  uint64_t request_id = 0;
};
Peeked peek(std::string_view body);

// Field-level validation that decode applies, exposed so senders can check before sending.
// Returns "" when valid, else a human-readable reason naming the field.
std::string validate(const Message& m);

}  // namespace simpleci::msg
