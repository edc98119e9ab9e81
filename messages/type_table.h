// The parts the table of message types (kMessageTypes in messages.h) is made of, and the
// compile-time checks that keep it whole.
//
// The table lists one Row<T> per message struct T, in wire order. Everything else about message
// types is derived from it: the Message variant, kMaxMessageType, type_of(), to_string(), the
// codec's decode switch, what peek() reads, the roles that may send a type (net/roles.cpp) and
// the reply budget's lists (net/reply_budget.cpp). Include messages.h, not this header.
#pragma once

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

namespace simpleci::msg {

enum class MessageType : uint8_t;  // messages.h: the wire numbers, one enumerator per row

// Which peers may send a type to the dispatcher: a bit per role of net/roles.h (the folder of
// the sender's key under CURVE). Types no peer may send (WELCOME, JOB, the replies, ...) have
// kNoPeer; the dispatcher refuses them as unexpected whoever sends them.
namespace sent_by {
inline constexpr uint8_t kNoPeer = 0;
inline constexpr uint8_t kRunner = 1;
inline constexpr uint8_t kObserver = 2;
inline constexpr uint8_t kClient = 4;
inline constexpr uint8_t kAdmin = 8;
inline constexpr uint8_t kReader = kObserver | kClient | kAdmin;  // the read-only requests
}  // namespace sent_by

// How a type carries a request id (always its first field, a u64 named request_id).
enum class RequestId : uint8_t {
  kNone,    // none
  kAsks,    // a request: the id its sender chose; peek() reads it to address a refusal
  kEchoes,  // a reply: the id of the request it answers
};

// The per-type facts, without the type itself: what code that holds only a wire number (peek,
// roles) or a Message (the reply budget) looks up.
struct TypeInfo {
  MessageType wire{};                    // the wire number (MessageType); rows are in this order
  std::string_view name;                 // to_string(MessageType): logs, counters, error text
  uint8_t sent_by = sent_by::kNoPeer;    // who may send it to the dispatcher (sent_by bits)
  RequestId request_id = RequestId::kNone;
  bool budgeted = true;  // false: what runners need to work, never refused by the reply budget
};

// One row of the table: the facts plus the struct they describe. `output`, when set, names the
// bytes field that makes the message an output-carrying reply when it is not empty (at most one
// such reply is in flight per peer; net/reply_budget.h).
template <class T>
struct Row {
  using type = T;
  TypeInfo info;
  std::string T::*output = nullptr;
};

namespace table {

// std::variant<T...> of a tuple of Row<T>...
template <class Tuple>
struct VariantOf;
template <class... T>
struct VariantOf<std::tuple<Row<T>...>> {
  using type = std::variant<T...>;
};

// Each struct has one row: a type listed twice would make the variant's alternatives ambiguous.
template <class U, class... T>
inline constexpr size_t count_of = (size_t{0} + ... + size_t{std::is_same_v<U, T>});
template <class Tuple>
struct DistinctRows;
template <class... T>
struct DistinctRows<std::tuple<Row<T>...>> : std::bool_constant<((count_of<T, T...> == 1) && ...)> {};

// A row whose type carries a request id names a struct with a u64 request_id (its first field;
// codec_test checks the order, as peek() reads it there).
template <class T>
concept HasRequestId = std::is_same_v<decltype(T::request_id), uint64_t>;
template <class... T>
constexpr bool request_ids_declared(const std::tuple<Row<T>...>& rows) {
  return std::apply(
      [](const auto&... r) {
        return ((r.info.request_id == RequestId::kNone ||
                 HasRequestId<typename std::decay_t<decltype(r)>::type>) && ...);
      },
      rows);
}

// The TypeInfo of every row, indexed by wire number (index 0: no type).
template <class... T>
constexpr auto infos_by_wire(const std::tuple<Row<T>...>& rows) {
  return std::apply(
      [](const auto&... r) { return std::array<TypeInfo, 1 + sizeof...(T)>{TypeInfo{}, r.info...}; },
      rows);
}

// True when every row's wire number is its position (1, 2, 3, ...): none missing, none twice.
template <size_t N>
constexpr bool in_wire_order(const std::array<TypeInfo, N>& infos) {
  for (size_t i = 1; i < N; ++i) {
    if (static_cast<size_t>(infos[i].wire) != i || infos[i].name.empty()) return false;
  }
  return true;
}

// Whether the enum value V has a name of its own, read from the compiler's text for this
// function (GCC and Clang print a named value as "V = ns::E::kName" and an unnamed one as
// "V = (ns::E)24"). It lets the table check that no MessageType enumerator lacks a row.
template <auto V>
constexpr bool is_enumerator() {
  constexpr std::string_view f = __PRETTY_FUNCTION__;
  constexpr size_t at = f.rfind("V = ");
  return at != std::string_view::npos && f[at + 4] != '(';
}
// The number of named values of E in [0, 256).
template <class E, size_t... I>
constexpr size_t enumerator_count(std::index_sequence<I...>) {
  return (size_t{0} + ... + size_t{is_enumerator<static_cast<E>(I)>()});
}

}  // namespace table

}  // namespace simpleci::msg
