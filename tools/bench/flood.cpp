// `simpleci-bench flood`: how long another peer's COMMIT waits for ACCEPTED while one socket
// floods the dispatcher with requests (issue 7, item 5), with many jobs stored. Each sample: the
// flooding socket sends --requests STATUS (or RESULTS) requests at once, then a second socket
// sends one COMMIT and times ACCEPTED; the flood's replies are read before the next sample.
// (A first wave of 500 requests goes ahead, so the dispatcher is busy when the flood arrives.)
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "dispatcher/store.h"
#include "messages/codec.h"
#include "net/reply_budget.h"
#include "net/transport.h"
#include "tools/bench/options.h"
#include "tools/bench/proc.h"

namespace simpleci::bench {

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kFirstWave = 500;

std::string commit_id(size_t n) {
  char buf[41];
  std::snprintf(buf, sizeof buf, "%040zx", n);
  return buf;
}

bool populate(const fs::path& state_dir, size_t queued, size_t finished) {
  fs::create_directories(state_dir);
  dispatcher::Store st;
  std::string err;
  bool ok = st.open((state_dir / "simpleci.db").string(), &err) && st.begin(&err);
  for (size_t i = 0; ok && i < queued + finished; ++i) {
    const uint64_t id = st.insert_job(commit_id(i + 1), "bench", 1, &err);
    ok = id != 0;
    if (ok && i >= queued) {
      msg::JobSummary s{id, commit_id(i + 1), "bench", msg::JobStatus::kPassed, 0, 1, "r", 1, 1, 1, 2, false};
      ok = st.finish(s, "ok\n", &err);
    }
  }
  if (ok) ok = st.commit(&err);
  if (!ok) std::fprintf(stderr, "simpleci-bench: cannot fill the store: %s\n", err.c_str());
  return ok;
}

// Reads replies on s until `want` of them (any kind) arrived or the deadline passed.
size_t drain(zmq::socket_t& s, size_t want, std::chrono::seconds timeout) {
  size_t got = 0;
  const auto end = Clock::now() + timeout;
  while (got < want && Clock::now() < end) {
    zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(50));
    while (net::recv(s, true, 2)) ++got;
  }
  return got;
}

}  // namespace

int run_flood(const FloodOptions& o) {
  fs::path tmp = make_temp_dir(o.work_dir);
  if (!populate(tmp / "state", o.queued, o.finished)) return 1;
  pid_t pid = -1;
  const std::string ep = start_dispatcher(tmp, o.dispatcher_bin, &pid);
  if (ep.empty()) return 1;
  zmq::context_t ctx(1);
  zmq::socket_t flood = net::make_dealer(ctx, ep);
  zmq::socket_t client = net::make_dealer(ctx, ep);
  net::send(client, msg::StatusRequest{1});  // waits for the store to load
  drain(client, 1, std::chrono::seconds(60));
  std::printf("flood: %zu queued and %zu finished jobs stored, %d samples of %zu %s requests\n",
              o.queued, o.finished, o.samples, o.requests, o.results ? "RESULTS" : "STATUS");
  std::vector<double> lat;
  bool ok = true;
  uint64_t rid = 1;
  for (int k = 0; k < o.samples && ok; ++k) {
    auto send_flood = [&](size_t n) {
      for (size_t i = 0; i < n; ++i) {
        net::send(flood, o.results ? msg::Message(msg::ResultsRequest{++rid, "", 1000, false})
                                   : msg::Message(msg::StatusRequest{++rid}));
      }
    };
    // A first wave, and once the dispatcher answers it the flood proper with the COMMIT right
    // behind it, so all of it waits in the dispatcher's queues together.
    send_flood(kFirstWave);
    const size_t early = drain(flood, 1, std::chrono::seconds(60));
    ok = early >= 1;
    send_flood(o.requests);
    const auto t0 = Clock::now();
    net::send(client, msg::Commit{++rid, commit_id(10'000'000 + k), "bench", false});
    ok = drain(client, 1, std::chrono::seconds(120)) == 1;
    lat.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    const size_t rest = kFirstWave + o.requests - early;
    ok = ok && drain(flood, rest, std::chrono::seconds(300)) == rest;
  }
  long rss = 0, hwm = 0;
  memory_kb(pid, &rss, &hwm);
  stop(pid);
  std::printf("COMMIT behind a flood: p50 %.1f ms, p99 %.1f ms, max %.1f ms; dispatcher RSS %ld KiB (peak %ld KiB)\n",
              percentile(lat, 50), percentile(lat, 99), percentile(lat, 100), rss, hwm);
  nlohmann::json j = {{"commit_p50_ms", std::round(percentile(lat, 50) * 10) / 10},
                      {"commit_p99_ms", std::round(percentile(lat, 99) * 10) / 10},
                      {"samples", lat.size()},
                      {"requests", o.requests},
                      {"kind", o.results ? "results" : "status"},
                      {"queued", o.queued},
                      {"dispatcher_rss_kb", rss},
                      {"dispatcher_peak_rss_kb", hwm}};
  std::printf("%s\n", j.dump().c_str());
  if (!ok) std::fprintf(stderr, "simpleci-bench: FAILED: a COMMIT or the flood's replies did not come back\n");
  std::error_code ec;
  if (!o.keep) fs::remove_all(tmp, ec);
  return ok ? 0 : 1;
}

}  // namespace simpleci::bench
