// The simpleCI wire protocol, version 1: every message type, in one table (kMessageTypes) that
// everything else about a type is derived from. The structs and their field lists are in
// bodies.h (included).
//
// messages/PROTOCOL.md is the normative description (frame layout, field order, limits, what a
// receiver does with a bad frame). This header is the C++ view of the same contract. Numeric
// values of MessageType, JobStatus and ErrorCode go on the wire: never renumber them, only add.
#pragma once

#include <cstdint>
#include <string_view>
#include <tuple>
#include <utility>
#include <variant>

#include "messages/bodies.h"
#include "messages/limits.h"
#include "messages/type_table.h"

namespace simpleci::msg {

// Bumped only for incompatible changes. Carried in the header frame of every message.
inline constexpr uint8_t kProtocolVersion = 2;

// Wire values: never renumber. Each has its row in kMessageTypes (below), which says who sends it.
enum class MessageType : uint8_t {
  kRegister = 1,       // runner -> dispatcher
  kWelcome = 2,        // dispatcher -> runner
  kHeartbeat = 3,      // both ways
  kJob = 4,            // dispatcher -> runner
  kOutput = 5,         // runner -> dispatcher
  kResult = 6,         // runner -> dispatcher
  kResultAck = 7,      // dispatcher -> runner
  kReregister = 8,     // dispatcher -> any peer it does not know
  kCancelJob = 9,      // dispatcher -> runner
  kCommit = 10,        // observer / client -> dispatcher
  kAccepted = 11,      // dispatcher -> observer / client
  kStatusRequest = 12, // client -> dispatcher
  kStatusReply = 13,   // dispatcher -> client
  kResultsRequest = 14,
  kResultsReply = 15,
  kCancelRequest = 16,
  kRetryRequest = 17,
  kOk = 18,
  kError = 19,
  kDrain = 20,         // runner -> dispatcher: finishing current jobs, send no more
  kWatchRequest = 21,  // client -> dispatcher: a job's live output from an offset
  kWatchReply = 22,    // dispatcher -> client
  kPruneRequest = 23,  // client -> dispatcher: drop old jobs' output and files (admin)
  kObserverHello = 24, // observer -> dispatcher: wake me when a push is notified
  kNotify = 25,        // client (a post-receive hook) -> dispatcher: branches were pushed
  kWake = 26,          // dispatcher -> observer: poll git now
  kSubscribe = 27,     // client -> dispatcher: start the event feed
  kSnapshot = 28,      // dispatcher -> subscriber: the state the events build on
  kEvent = 29,         // dispatcher -> subscriber
  kJobOutput = 30,     // dispatcher -> subscriber: a followed job's live output
  kUnsubscribe = 31,   // client -> dispatcher
  kMetricsRequest = 32,
  kMetricsReply = 33,
  kJobsRequest = 34,   // client -> dispatcher: jobs by branch and status (RESULTS_REPLY)
  kEvents = 35,        // dispatcher -> subscriber: the EVENTs of one round, in order
  kRepos = 36,         // dispatcher -> observer: the declared repositories
};

std::string_view to_string(MessageType t);  // the row's name: "register", ...

// ---- The table of message types ----------------------------------------------------------
//
// One row per message type, in wire order; the compiler checks it (static_asserts below). To add
// a message type:
//   1. add its wire number to MessageType (the next number; never reuse one),
//   2. write its struct in bodies.h, with fields(v) listing its fields in wire order,
//   3. add its row here: Row<Struct>{{.wire, .name (lowercase, for logs and counters),
//      .sent_by (who may send it to the dispatcher; leave out for the dispatcher's own),
//      .request_id (kAsks for a request, kEchoes for a reply), .budgeted = false only for what
//      runners need to work}, &Struct::field when a non-empty bytes field makes it an
//      output-carrying reply},
//   4. describe it in PROTOCOL.md (the table of messages, and its rules),
//   5. handle it where it is received (the dispatcher's std::visit has no default).
// The Message variant, kMaxMessageType, type_of(), to_string(), decoding, peek(), the roles
// (net/roles.cpp) and the reply budget's lists (net/reply_budget.cpp) follow from the row.
namespace sb = sent_by;
inline constexpr std::tuple kMessageTypes{
    Row<Register>{{.wire = MessageType::kRegister, .name = "register", .sent_by = sb::kRunner}},
    Row<Welcome>{{.wire = MessageType::kWelcome, .name = "welcome", .budgeted = false}},
    Row<Heartbeat>{{.wire = MessageType::kHeartbeat, .name = "heartbeat", .sent_by = sb::kRunner,
                    .budgeted = false}},
    Row<Job>{{.wire = MessageType::kJob, .name = "job", .budgeted = false}},
    Row<Output>{{.wire = MessageType::kOutput, .name = "output", .sent_by = sb::kRunner}},
    Row<Result>{{.wire = MessageType::kResult, .name = "result", .sent_by = sb::kRunner}},
    Row<ResultAck>{{.wire = MessageType::kResultAck, .name = "result_ack", .budgeted = false}},
    Row<Reregister>{{.wire = MessageType::kReregister, .name = "reregister"}},
    Row<CancelJob>{{.wire = MessageType::kCancelJob, .name = "cancel_job", .budgeted = false}},
    Row<Commit>{{.wire = MessageType::kCommit, .name = "commit",
                 .sent_by = sb::kObserver | sb::kAdmin, .request_id = RequestId::kAsks}},
    Row<Accepted>{{.wire = MessageType::kAccepted, .name = "accepted",
                   .request_id = RequestId::kEchoes}},
    Row<StatusRequest>{{.wire = MessageType::kStatusRequest, .name = "status_request",
                        .sent_by = sb::kReader, .request_id = RequestId::kAsks}},
    Row<StatusReply>{{.wire = MessageType::kStatusReply, .name = "status_reply",
                      .request_id = RequestId::kEchoes}},
    Row<ResultsRequest>{{.wire = MessageType::kResultsRequest, .name = "results_request",
                         .sent_by = sb::kReader, .request_id = RequestId::kAsks}},
    Row<ResultsReply>{{.wire = MessageType::kResultsReply, .name = "results_reply",
                       .request_id = RequestId::kEchoes},
                      &ResultsReply::output},
    Row<CancelRequest>{{.wire = MessageType::kCancelRequest, .name = "cancel_request",
                        .sent_by = sb::kAdmin, .request_id = RequestId::kAsks}},
    Row<RetryRequest>{{.wire = MessageType::kRetryRequest, .name = "retry_request",
                       .sent_by = sb::kAdmin, .request_id = RequestId::kAsks}},
    Row<Ok>{{.wire = MessageType::kOk, .name = "ok", .request_id = RequestId::kEchoes}},
    Row<Error>{{.wire = MessageType::kError, .name = "error", .request_id = RequestId::kEchoes}},
    Row<Drain>{{.wire = MessageType::kDrain, .name = "drain", .sent_by = sb::kRunner}},
    Row<WatchRequest>{{.wire = MessageType::kWatchRequest, .name = "watch_request",
                       .sent_by = sb::kReader, .request_id = RequestId::kAsks}},
    Row<WatchReply>{{.wire = MessageType::kWatchReply, .name = "watch_reply",
                     .request_id = RequestId::kEchoes},
                    &WatchReply::data},
    Row<PruneRequest>{{.wire = MessageType::kPruneRequest, .name = "prune_request",
                       .sent_by = sb::kAdmin, .request_id = RequestId::kAsks}},
    Row<ObserverHello>{{.wire = MessageType::kObserverHello, .name = "observer_hello",
                        .sent_by = sb::kObserver | sb::kAdmin}},
    Row<Notify>{{.wire = MessageType::kNotify, .name = "notify", .sent_by = sb::kReader,
                 .request_id = RequestId::kAsks}},
    Row<Wake>{{.wire = MessageType::kWake, .name = "wake"}},
    Row<Subscribe>{{.wire = MessageType::kSubscribe, .name = "subscribe", .sent_by = sb::kReader,
                    .request_id = RequestId::kAsks}},
    Row<Snapshot>{{.wire = MessageType::kSnapshot, .name = "snapshot",
                   .request_id = RequestId::kEchoes}},
    Row<Event>{{.wire = MessageType::kEvent, .name = "event"}},
    Row<JobOutput>{{.wire = MessageType::kJobOutput, .name = "job_output"}},
    Row<Unsubscribe>{{.wire = MessageType::kUnsubscribe, .name = "unsubscribe",
                      .sent_by = sb::kReader, .request_id = RequestId::kAsks}},
    Row<MetricsRequest>{{.wire = MessageType::kMetricsRequest, .name = "metrics_request",
                         .sent_by = sb::kReader, .request_id = RequestId::kAsks}},
    Row<MetricsReply>{{.wire = MessageType::kMetricsReply, .name = "metrics_reply",
                       .request_id = RequestId::kEchoes}},
    Row<JobsRequest>{{.wire = MessageType::kJobsRequest, .name = "jobs_request",
                      .sent_by = sb::kReader, .request_id = RequestId::kAsks}},
    Row<Events>{{.wire = MessageType::kEvents, .name = "events"}},
    Row<Repos>{{.wire = MessageType::kRepos, .name = "repos"}},
};

// ---- Derived from the table ----------------------------------------------------------------

using MessageTypes = std::remove_const_t<decltype(kMessageTypes)>;

// Every message; the alternatives are the table's structs in wire order.
using Message = table::VariantOf<MessageTypes>::type;

inline constexpr uint8_t kMinMessageType = 1;
inline constexpr uint8_t kMaxMessageType = std::variant_size_v<Message>;

// TypeInfo by wire number; [0] is no type.
inline constexpr auto kTypeInfos = table::infos_by_wire(kMessageTypes);

static_assert(table::DistinctRows<MessageTypes>::value, "a struct has two rows in kMessageTypes");
static_assert(table::in_wire_order(kTypeInfos),
              "kMessageTypes: rows must be in wire order 1, 2, 3, ... with a name each");
static_assert(table::request_ids_declared(kMessageTypes),
              "a row with a RequestId names a struct without a uint64_t request_id");
static_assert(table::enumerator_count<MessageType>(std::make_index_sequence<256>()) ==
                  kMaxMessageType,
              "a MessageType enumerator has no row in kMessageTypes");

// The facts of wire type `type`; nullptr when no type has that number.
constexpr const TypeInfo* type_info(uint8_t type) {
  return type >= kMinMessageType && type <= kMaxMessageType ? &kTypeInfos[type] : nullptr;
}
// The row of struct T (a compile error when T has none).
template <class T>
constexpr const Row<T>& row_of() {
  return std::get<Row<T>>(kMessageTypes);
}

MessageType type_of(const Message& m);
const TypeInfo& info_of(const Message& m);

}  // namespace simpleci::msg
