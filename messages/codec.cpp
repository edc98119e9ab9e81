#include "messages/codec.h"

#include <cstring>
#include <limits>
#include <new>
#include <stdexcept>

#include <msgpack.hpp>

#include "messages/skim.h"
#include "messages/validate.h"

namespace simpleci::msg {

namespace {

// Every message type lists its fields once, in wire order, through a visitor. The same list
// drives encoding (Writer), decoding with validation (Reader) and sender-side checks (Checker),
// so the three can never disagree about field order or limits.

template <class V> void visit(V&, Heartbeat&) {}
template <class V> void visit(V&, Reregister&) {}
template <class V> void visit(V&, Drain&) {}

template <class V> void visit(V& v, Register& m) {
  v.name("name", m.name);
  v.u32("capacity", m.capacity, 1, kMaxCapacity);
  v.ids("held_jobs", m.held_jobs);
}
template <class V> void visit(V& v, Welcome& m) {
  v.u32("heartbeat_ms", m.heartbeat_ms, kMinHeartbeatMs, kMaxHeartbeatMs);
}
template <class V> void visit(V& v, Job& m) {
  v.u64("job_id", m.job_id, 1);
  v.u32("attempt", m.attempt, 1, kMaxAttempt);
  v.commit("commit", m.commit, false);
  v.branch("branch", m.branch);
  v.text("test_command", m.test_command, kMaxCommandLen);
  v.u32("timeout_s", m.timeout_s, 1, kMaxTimeoutS);
  v.u64("output_cap", m.output_cap, 1024, kMaxOutputCap);
}
template <class V> void visit(V& v, Output& m) {
  v.u64("job_id", m.job_id, 1);
  v.u32("attempt", m.attempt, 1, kMaxAttempt);
  v.u64("offset", m.offset, 0, kMaxOffset);
  v.bytes("data", m.data, kMaxChunkBytes);
}
template <class V> void visit(V& v, Result& m) {
  v.u64("job_id", m.job_id, 1);
  v.u32("attempt", m.attempt, 1, kMaxAttempt);
  v.status("status", m.status, true);
  v.i32("exit_code", m.exit_code);
  v.time("started_at_ms", m.started_at_ms);
  v.time("finished_at_ms", m.finished_at_ms);
  v.boolean("truncated", m.truncated);
  v.bytes("output", m.output, kMaxOutputCap);
}
template <class V> void visit(V& v, ResultAck& m) {
  v.u64("job_id", m.job_id, 1);
  v.u32("attempt", m.attempt, 1, kMaxAttempt);
}
template <class V> void visit(V& v, CancelJob& m) {
  v.u64("job_id", m.job_id, 1);
  v.u32("attempt", m.attempt, 1, kMaxAttempt);
}
template <class V> void visit(V& v, Commit& m) {
  v.u64("request_id", m.request_id);
  v.commit("commit", m.commit, false);
  v.branch("branch", m.branch);
  v.boolean("force", m.force);
}
template <class V> void visit(V& v, Accepted& m) {
  v.u64("request_id", m.request_id);
  v.u64("job_id", m.job_id, 1);
  v.boolean("duplicate", m.duplicate);
}
template <class V> void visit(V& v, StatusRequest& m) { v.u64("request_id", m.request_id); }
template <class V> void visit(V& v, RunnerInfo& m) {
  v.name("name", m.name);
  v.text("state", m.state, 16);
  v.u32("capacity", m.capacity, 1, kMaxCapacity);
  v.ids("jobs", m.jobs);
  v.time("last_seen_ms", m.last_seen_ms);
}
template <class V> void visit(V& v, JobSummary& m) {
  v.u64("job_id", m.job_id, 1);
  v.commit("commit", m.commit, false);
  v.branch("branch", m.branch);
  v.status("status", m.status, false);
  v.i32("exit_code", m.exit_code);
  v.time("duration_ms", m.duration_ms);
  v.text("runner", m.runner, kMaxNameLen);
  v.u32("attempt", m.attempt, 0, kMaxAttempt);
  v.time("created_at_ms", m.created_at_ms);
  v.time("started_at_ms", m.started_at_ms);
  v.time("finished_at_ms", m.finished_at_ms);
  v.boolean("truncated", m.truncated);
}
template <class V> void visit(V& v, Counter& m) {
  v.text("name", m.name, kMaxNameLen);
  v.u64("value", m.value);
}
template <class V> void visit(V& v, StatusReply& m) {
  v.u64("request_id", m.request_id);
  v.list("runners", m.runners, kMaxListLen);
  v.u64("queue_length", m.queue_length);
  v.list("running", m.running, kMaxListLen);
  v.list("counters", m.counters, kMaxCounters);
}
template <class V> void visit(V& v, ResultsRequest& m) {
  v.u64("request_id", m.request_id);
  v.commit("commit", m.commit, true);
  v.u32("limit", m.limit, 1, kMaxListLen);
  v.boolean("with_output", m.with_output);
}
template <class V> void visit(V& v, ResultsReply& m) {
  v.u64("request_id", m.request_id);
  v.list("jobs", m.jobs, kMaxListLen);
  v.bytes("output", m.output, kMaxOutputCap);
}
template <class V> void visit(V& v, CancelRequest& m) {
  v.u64("request_id", m.request_id);
  v.u64("job_id", m.job_id, 1);
}
template <class V> void visit(V& v, RetryRequest& m) {
  v.u64("request_id", m.request_id);
  v.u64("job_id", m.job_id, 1);
}
template <class V> void visit(V& v, Ok& m) {
  v.u64("request_id", m.request_id);
  v.u64("job_id", m.job_id);
  v.text("text", m.text, kMaxTextLen);
}
template <class V> void visit(V& v, Error& m) {
  v.u64("request_id", m.request_id);
  v.error_code("code", m.code);
  v.text("text", m.text, kMaxTextLen);
}
template <class V> void visit(V& v, WatchRequest& m) {
  v.u64("request_id", m.request_id);
  v.u64("job_id", m.job_id, 1);
  v.u32("attempt", m.attempt, 0, kMaxAttempt);
  v.u64("offset", m.offset, 0, kMaxOffset);
}
template <class V> void visit(V& v, WatchReply& m) {
  v.u64("request_id", m.request_id);
  v.u64("job_id", m.job_id, 1);
  v.u32("attempt", m.attempt, 0, kMaxAttempt);
  v.status("status", m.status, false);
  v.i32("exit_code", m.exit_code);
  v.time("duration_ms", m.duration_ms);
  v.text("runner", m.runner, kMaxNameLen);
  v.u64("offset", m.offset, 0, kMaxOffset);
  v.bytes("data", m.data, kMaxWatchBytes);
  v.boolean("complete", m.complete);
}

template <class V> void visit(V& v, PruneRequest& m) {
  v.u64("request_id", m.request_id);
  v.u32("older_than_days", m.older_than_days, 1, kMaxPruneDays);
}

// Wire type of each variant alternative, indexed like Message.
constexpr MessageType kTypeOfIndex[] = {
    MessageType::kRegister,      MessageType::kWelcome,        MessageType::kHeartbeat,
    MessageType::kJob,           MessageType::kOutput,         MessageType::kResult,
    MessageType::kResultAck,     MessageType::kReregister,     MessageType::kCancelJob,
    MessageType::kCommit,        MessageType::kAccepted,       MessageType::kStatusRequest,
    MessageType::kStatusReply,   MessageType::kResultsRequest, MessageType::kResultsReply,
    MessageType::kCancelRequest, MessageType::kRetryRequest,   MessageType::kOk,
    MessageType::kError,         MessageType::kDrain,          MessageType::kWatchRequest,
    MessageType::kWatchReply,    MessageType::kPruneRequest};
static_assert(std::size(kTypeOfIndex) == std::variant_size_v<Message>);

// Builds the variant alternative whose wire type is t (t already range-checked).
template <size_t I = 0>
Message make_message(MessageType t) {
  if constexpr (I < std::variant_size_v<Message>) {
    if (kTypeOfIndex[I] == t) return Message(std::in_place_index<I>);
    return make_message<I + 1>(t);
  } else {
    throw std::logic_error("unreachable: message type table incomplete");
  }
}

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
  visit(c, const_cast<T&>(m));
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
  template <class... A> void text(const char*, std::string& s, A&&...) { n += kHeader + s.size(); }
  template <class... A> void bytes(const char*, std::string& s, A&&...) { n += kHeader + s.size(); }
  void ids(const char*, std::vector<uint64_t>& v) { n += kHeader * (1 + v.size()); }
  template <class T>
  void list(const char*, std::vector<T>& v, size_t) {
    n += kHeader;
    for (T& e : v) {
      n += kHeader;
      visit(*this, e);
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
      visit(*this, e);
    }
  }
};

// --- Reader: pulls fields from a msgpack array in order, validating each. ---
struct FieldError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Reader {
  const msgpack::object* items;
  uint32_t size;
  uint32_t pos = 0;
  std::string where;  // "job" / "status_reply.runners[3]" for error text

  [[noreturn]] void fail(const char* field, const std::string& why) const {
    throw FieldError(where + "." + field + ": " + why);
  }
  const msgpack::object& next(const char* field) {
    if (pos >= size) fail(field, "missing");
    return items[pos++];
  }
  uint64_t uint_in(const char* field, uint64_t lo, uint64_t hi) {
    const msgpack::object& o = next(field);
    if (o.type != msgpack::type::POSITIVE_INTEGER) fail(field, "not an unsigned integer");
    if (o.via.u64 < lo || o.via.u64 > hi) {
      fail(field, "out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]: " +
                      std::to_string(o.via.u64));
    }
    return o.via.u64;
  }
  int64_t int_in(const char* field, int64_t lo, int64_t hi) {
    const msgpack::object& o = next(field);
    int64_t x = 0;
    if (o.type == msgpack::type::POSITIVE_INTEGER) {
      if (o.via.u64 > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        fail(field, "out of range");
      }
      x = static_cast<int64_t>(o.via.u64);
    } else if (o.type == msgpack::type::NEGATIVE_INTEGER) {
      x = o.via.i64;
    } else {
      fail(field, "not an integer");
    }
    if (x < lo || x > hi) fail(field, "out of range: " + std::to_string(x));
    return x;
  }
  std::string raw_str(const char* field, msgpack::type::object_type want, size_t max) {
    const msgpack::object& o = next(field);
    if (o.type != want) fail(field, want == msgpack::type::BIN ? "not bin" : "not a string");
    const uint32_t n = want == msgpack::type::BIN ? o.via.bin.size : o.via.str.size;
    const char* p = want == msgpack::type::BIN ? o.via.bin.ptr : o.via.str.ptr;
    if (n > max) fail(field, "longer than " + std::to_string(max) + " bytes");
    return std::string(p, n);
  }

  void u64(const char* f, uint64_t& x, uint64_t lo = 0,
           uint64_t hi = std::numeric_limits<uint64_t>::max()) {
    x = uint_in(f, lo, hi);
  }
  void u32(const char* f, uint32_t& x, uint32_t lo = 0,
           uint32_t hi = std::numeric_limits<uint32_t>::max()) {
    x = static_cast<uint32_t>(uint_in(f, lo, hi));
  }
  void i32(const char* f, int32_t& x) {
    x = static_cast<int32_t>(
        int_in(f, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()));
  }
  void time(const char* f, int64_t& x) { x = int_in(f, 0, kMaxTimeMs); }
  void boolean(const char* f, bool& x) {
    const msgpack::object& o = next(f);
    if (o.type != msgpack::type::BOOLEAN) fail(f, "not a boolean");
    x = o.via.boolean;
  }
  void name(const char* f, std::string& s) {
    s = raw_str(f, msgpack::type::STR, kMaxNameLen);
    if (!is_safe_name(s)) fail(f, "not a safe name (1-64 of A-Z a-z 0-9 . _ -)");
  }
  void commit(const char* f, std::string& s, bool allow_empty) {
    s = raw_str(f, msgpack::type::STR, 64);
    if (!(allow_empty && s.empty()) && !is_commit_id(s)) {
      fail(f, "not a commit id (40 or 64 lowercase hex characters)");
    }
  }
  void branch(const char* f, std::string& s) {
    s = raw_str(f, msgpack::type::STR, kMaxBranchLen);
    if (!is_valid_branch(s)) fail(f, "not a valid branch name");
  }
  void text(const char* f, std::string& s, size_t max) {
    s = raw_str(f, msgpack::type::STR, max);
    if (!is_valid_text(s, max)) fail(f, "contains NUL");
  }
  void bytes(const char* f, std::string& s, size_t max) { s = raw_str(f, msgpack::type::BIN, max); }
  void status(const char* f, JobStatus& s, bool final_only) {
    s = static_cast<JobStatus>(uint_in(f, final_only ? 2 : 0, kMaxJobStatus));
  }
  void error_code(const char* f, ErrorCode& c) {
    c = static_cast<ErrorCode>(uint_in(f, 1, kMaxErrorCode));
  }
  const msgpack::object& array_field(const char* f, size_t max) {
    const msgpack::object& o = next(f);
    if (o.type != msgpack::type::ARRAY) fail(f, "not an array");
    if (o.via.array.size > max) fail(f, "more than " + std::to_string(max) + " elements");
    return o;
  }
  void ids(const char* f, std::vector<uint64_t>& v) {
    const msgpack::object& o = array_field(f, kMaxListLen);
    v.clear();
    v.reserve(o.via.array.size);
    Reader sub{o.via.array.ptr, o.via.array.size, 0, where + "." + f};
    for (uint32_t i = 0; i < o.via.array.size; ++i) v.push_back(sub.uint_in("[]", 1, UINT64_MAX));
  }
  template <class T>
  void list(const char* f, std::vector<T>& v, size_t max) {
    const msgpack::object& o = array_field(f, max);
    v.clear();
    v.resize(o.via.array.size);
    for (uint32_t i = 0; i < o.via.array.size; ++i) {
      const msgpack::object& e = o.via.array.ptr[i];
      const std::string at = where + "." + f + "[" + std::to_string(i) + "]";
      if (e.type != msgpack::type::ARRAY) throw FieldError(at + ": not an array");
      Reader sub{e.via.array.ptr, e.via.array.size, 0, at};
      visit(sub, v[i]);
      sub.finish();
    }
  }
  void finish() const {
    if (pos != size) {
      throw FieldError(where + ": expected " + std::to_string(pos) + " fields, got " +
                       std::to_string(size));
    }
  }
};

// --- Checker: the Reader's rules applied to an in-memory message (sender side). ---
struct Checker {
  std::string err;
  std::string where;
  void fail(const char* f, const std::string& why) {
    if (err.empty()) err = where + "." + f + ": " + why;
  }
  void u64(const char* f, uint64_t& x, uint64_t lo = 0,
           uint64_t hi = std::numeric_limits<uint64_t>::max()) {
    if (x < lo || x > hi) fail(f, "out of range");
  }
  void u32(const char* f, uint32_t& x, uint32_t lo = 0,
           uint32_t hi = std::numeric_limits<uint32_t>::max()) {
    if (x < lo || x > hi) fail(f, "out of range");
  }
  void i32(const char*, int32_t&) {}
  void time(const char* f, int64_t& x) {
    if (x < 0 || x > kMaxTimeMs) fail(f, "out of range");
  }
  void boolean(const char*, bool&) {}
  void name(const char* f, std::string& s) {
    if (!is_safe_name(s)) fail(f, "not a safe name");
  }
  void commit(const char* f, std::string& s, bool allow_empty) {
    if (!(allow_empty && s.empty()) && !is_commit_id(s)) fail(f, "not a commit id");
  }
  void branch(const char* f, std::string& s) {
    if (!is_valid_branch(s)) fail(f, "not a valid branch name");
  }
  void text(const char* f, std::string& s, size_t max) {
    if (!is_valid_text(s, max)) fail(f, "too long or contains NUL");
  }
  void bytes(const char* f, std::string& s, size_t max) {
    if (s.size() > max) fail(f, "too long");
  }
  void status(const char* f, JobStatus& s, bool final_only) {
    const auto v = static_cast<uint8_t>(s);
    if (v > kMaxJobStatus || (final_only && v < 2)) fail(f, "not a valid status");
  }
  void error_code(const char* f, ErrorCode& c) {
    const auto v = static_cast<uint8_t>(c);
    if (v < 1 || v > kMaxErrorCode) fail(f, "not a valid code");
  }
  void ids(const char* f, std::vector<uint64_t>& v) {
    if (v.size() > kMaxListLen) fail(f, "too many elements");
    for (uint64_t id : v) {
      if (id == 0) fail(f, "job id 0");
    }
  }
  template <class T>
  void list(const char* f, std::vector<T>& v, size_t max) {
    if (v.size() > max) fail(f, "too many elements");
    for (T& e : v) visit(*this, e);
  }
};

// Strings and binary payloads are referenced in the frame rather than copied into msgpack's
// zone: the frame outlives decoding, and a 16 MiB output is then copied once (into the message),
// not twice.
bool reference_payloads(msgpack::type::object_type, std::size_t, void*) { return true; }

const msgpack::unpack_limit kLimits(
    /*array=*/kMaxListLen + 16, /*map=*/0, /*str=*/kMaxTextLen, /*bin=*/kMaxOutputCap,
    /*ext=*/0, /*depth=*/kMaxDepth);

}  // namespace

std::string_view to_string(MessageType t) {
  static constexpr std::string_view kNames[] = {
      "?",           "register",       "welcome",       "heartbeat",       "job",
      "output",      "result",         "result_ack",    "reregister",      "cancel_job",
      "commit",      "accepted",       "status_request", "status_reply",   "results_request",
      "results_reply", "cancel_request", "retry_request", "ok",            "error",
      "drain",       "watch_request",  "watch_reply",   "prune_request"};
  const auto i = static_cast<size_t>(t);
  return i < std::size(kNames) ? kNames[i] : "?";
}

std::string_view to_string(JobStatus s) {
  static constexpr std::string_view kNames[] = {"queued",  "running",   "passed", "failed",
                                                "timeout", "cancelled", "error"};
  const auto i = static_cast<size_t>(s);
  return i < std::size(kNames) ? kNames[i] : "?";
}

std::optional<JobStatus> job_status_from_string(std::string_view s) {
  for (uint8_t i = 0; i <= kMaxJobStatus; ++i) {
    if (to_string(static_cast<JobStatus>(i)) == s) return static_cast<JobStatus>(i);
  }
  return std::nullopt;
}

bool is_final(JobStatus s) { return static_cast<uint8_t>(s) >= 2; }

std::string_view to_string(ErrorCode c) {
  static constexpr std::string_view kNames[] = {"?",           "bad_request", "version_mismatch",
                                                "storage_failure", "not_found", "invalid_state",
                                                "unauthorized", "queue_full", "busy"};
  const auto i = static_cast<size_t>(c);
  return i < std::size(kNames) ? kNames[i] : "?";
}

std::string_view to_string(DecodeError e) {
  static constexpr std::string_view kNames[] = {"ok",        "frame_count",    "bad_header",
                                                "version",   "malformed",      "trailing_bytes",
                                                "unknown_type", "bad_field"};
  const auto i = static_cast<size_t>(e);
  return i < std::size(kNames) ? kNames[i] : "?";
}

MessageType type_of(const Message& m) { return kTypeOfIndex[m.index()]; }

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
        visit(bound, b);
        buf.out.reserve(bound.n + 16);  // one allocation, even for a 16 MiB output
        pk.pack_array(1 + field_count(body));
        pk.pack_uint8(static_cast<uint8_t>(type_of(m)));
        Writer w{pk};
        visit(w, b);
      },
      m);
  return std::move(buf.out);
}

std::string validate(const Message& m) {
  Checker c;
  c.where = std::string(to_string(type_of(m)));
  std::visit([&](const auto& body) { visit(c, const_cast<std::decay_t<decltype(body)>&>(body)); },
             m);
  return c.err;
}

Decoded decode_body(std::string_view body, size_t max_objects) {
  Decoded out;
  auto reject = [&](DecodeError e, std::string detail) {
    out.error = e;
    out.detail = std::move(detail);
    return out;
  };
  if (body.empty()) return reject(DecodeError::kMalformed, "empty body");
  if (body.size() > static_cast<size_t>(kMaxFrameBytes)) {
    return reject(DecodeError::kMalformed, "body larger than the frame limit");
  }
  // Count the values first: unpacking allocates for each, and the per-container limits below do
  // not bound their total.
  if (const Skim sk = skim_msgpack(body, max_objects); !sk.ok()) {
    return reject(DecodeError::kMalformed, std::string("msgpack: ") + sk.error);
  }
  msgpack::object_handle oh;
  std::size_t offset = 0;
  try {
    msgpack::unpack(oh, body.data(), body.size(), offset, reference_payloads, nullptr, kLimits);
  } catch (const std::bad_alloc&) {
    return reject(DecodeError::kMalformed, "out of memory while unpacking");
  } catch (const std::exception& e) {
    return reject(DecodeError::kMalformed, std::string("msgpack: ") + e.what());
  }
  if (offset != body.size()) {
    return reject(DecodeError::kTrailingBytes,
                  std::to_string(body.size() - offset) + " bytes after the message");
  }
  const msgpack::object& root = oh.get();
  if (root.type != msgpack::type::ARRAY || root.via.array.size == 0) {
    return reject(DecodeError::kMalformed, "body is not a non-empty array");
  }
  const msgpack::object& t = root.via.array.ptr[0];
  if (t.type != msgpack::type::POSITIVE_INTEGER || t.via.u64 < kMinMessageType ||
      t.via.u64 > kMaxMessageType) {
    return reject(DecodeError::kUnknownType, "unknown message type");
  }
  const auto type = static_cast<MessageType>(t.via.u64);
  try {
    out.message = make_message(type);
    std::visit(
        [&](auto& m) {
          Reader r{root.via.array.ptr + 1, root.via.array.size - 1, 0, std::string(to_string(type))};
          visit(r, m);
          r.finish();
        },
        out.message);
  } catch (const FieldError& e) {
    return reject(DecodeError::kBadField, e.what());
  } catch (const std::bad_alloc&) {
    return reject(DecodeError::kMalformed, "out of memory while decoding");
  }
  return out;
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

// ---- peek ------------------------------------------------------------------------------

namespace {

// Requests carry their request id as the first field.
bool is_request(uint8_t type) {
  switch (type) {
    case static_cast<uint8_t>(MessageType::kCommit):
    case static_cast<uint8_t>(MessageType::kStatusRequest):
    case static_cast<uint8_t>(MessageType::kResultsRequest):
    case static_cast<uint8_t>(MessageType::kCancelRequest):
    case static_cast<uint8_t>(MessageType::kRetryRequest):
    case static_cast<uint8_t>(MessageType::kWatchRequest):
    case static_cast<uint8_t>(MessageType::kPruneRequest):
      return true;
    default:
      return false;
  }
}

// A msgpack unsigned integer at b[*pos] (positive fixint, uint8..uint64), moving *pos past it.
bool peek_uint(std::string_view b, size_t* pos, uint64_t* v) {
  if (*pos >= b.size()) return false;
  const auto c = static_cast<uint8_t>(b[*pos]);
  size_t len = 0;
  if (c <= 0x7f) {
    *v = c;
    ++*pos;
    return true;
  }
  if (c == 0xcc) len = 1;
  else if (c == 0xcd) len = 2;
  else if (c == 0xce) len = 4;
  else if (c == 0xcf) len = 8;
  else return false;
  if (*pos + 1 + len > b.size()) return false;
  *v = 0;
  for (size_t i = 1; i <= len; ++i) *v = (*v << 8) | static_cast<uint8_t>(b[*pos + i]);
  *pos += 1 + len;
  return true;
}

// Skips a msgpack array header with at least min elements.
bool peek_array(std::string_view b, size_t* pos, uint64_t min) {
  if (*pos >= b.size()) return false;
  const auto c = static_cast<uint8_t>(b[*pos]);
  uint64_t n = 0;
  size_t len = 0;
  if ((c & 0xf0) == 0x90) n = c & 0x0f;
  else if (c == 0xdc) len = 2;
  else if (c == 0xdd) len = 4;
  else return false;
  if (*pos + 1 + len > b.size()) return false;
  for (size_t i = 1; i <= len; ++i) n = (n << 8) | static_cast<uint8_t>(b[*pos + i]);
  *pos += 1 + len;
  return n >= min;
}

}  // namespace

Peeked peek(std::string_view body) {
  Peeked out;
  size_t pos = 0;
  uint64_t type = 0, id = 0;
  if (!peek_array(body, &pos, 1) || !peek_uint(body, &pos, &type) || type > 0xff) return out;
  out.type = static_cast<uint8_t>(type);
  if (is_request(out.type) && peek_uint(body, &pos, &id)) out.request_id = id;
  return out;
}

}  // namespace simpleci::msg
