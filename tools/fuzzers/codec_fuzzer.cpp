// Fuzzes the message decoder with arbitrary bytes. The first byte picks how the input is split
// into header and body so both frames get explored. Anything decode() accepts must re-encode
// and decode to the same message, and must pass the sender-side validate(). The msgpack skimmer
// (object budget) and peek() (type and request id without decoding) are checked against the
// decoder on the same bytes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <type_traits>
#include <variant>

#include "messages/codec.h"
#include "messages/skim.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace simpleci::msg;
  if (size == 0) return 0;
  const std::string_view all(reinterpret_cast<const char*>(data + 1), size - 1);
  // Mode 0: valid header + fuzzed body (the common case); otherwise split at data[0] % 8.
  std::string_view header, body;
  const std::string good = header_frame();
  if (data[0] < 200) {
    header = good;
    body = all;
  } else {
    const size_t cut = std::min<size_t>(data[0] % 8, all.size());
    header = all.substr(0, cut);
    body = all.substr(cut);
  }
  const Decoded d = decode(header, body);
  // The skimmer on its own: it never reads past the body, and it agrees with the decoder about
  // where an accepted body's value ends.
  const Skim sk = skim_msgpack(body, kMaxObjects);
  if (sk.ok() && sk.end > body.size()) std::abort();
  if (d.ok() && (!sk.ok() || sk.end != body.size())) std::abort();
  if (!d.ok()) {
    if (d.detail.empty()) std::abort();  // every rejection must say why
    return 0;
  }
  if (!validate(d.message).empty()) std::abort();
  // peek() reads the type and, for a request, the request id that the decoder reads.
  const Peeked p = peek(body);
  if (p.type != static_cast<uint8_t>(type_of(d.message))) std::abort();
  const uint64_t id = std::visit(
      [](const auto& m) -> uint64_t {
        if constexpr (table::HasRequestId<std::decay_t<decltype(m)>>) return m.request_id;
        return 0;
      },
      d.message);
  if (p.request_id != (info_of(d.message).request_id == RequestId::kAsks ? id : 0)) std::abort();
  const Decoded again = decode_body(encode(d.message));
  if (!again.ok() || !(again.message == d.message)) std::abort();
  return 0;
}
