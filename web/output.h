// /api/jobs/ID/output: a job's output as chunked text/plain, pulled from the dispatcher with
// WATCH_REQUEST one reply at a time, so a slow reader holds one chunk and a vanished one
// nothing. Follows a running job until it is final; never skips bytes the store keeps
// (docs/HTTP.md "Output"). I/O thread only.
#pragma once

#include <cstdint>

#include <boost/asio/ip/tcp.hpp>

namespace simpleci::web {

struct Context;

inline constexpr std::chrono::milliseconds kOutputPoll{200};

// Takes over the connection. Answers 404 when the dispatcher knows no such job, 503 when it does
// not answer, else streams from byte `offset`.
void start_output(Context& ctx, boost::asio::ip::tcp::socket sock, uint64_t job_id, uint64_t offset);

}  // namespace simpleci::web
