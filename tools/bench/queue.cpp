// `simpleci-bench queue`: what queued jobs cost the dispatcher in memory (issue 9). Fills two
// stores before the dispatcher starts, one empty and one with --queued jobs (random 40-hex
// commits, a handful of branches), starts the real dispatcher on each, waits until it answers
// STATUS with the whole queue, lets it go idle, and reads /proc/PID/status: VmRSS (with RssAnon
// and RssFile) and VmHWM. Prints RSS per queued job, (RSS(N) - RSS(0)) / N, and the load time:
// from the start of the process to the STATUS answer (the store is read before the bind).
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "dispatcher/store.h"
#include "messages/codec.h"
#include "net/transport.h"
#include "tools/bench/options.h"
#include "tools/bench/proc.h"

namespace simpleci::bench {

namespace {

using Clock = std::chrono::steady_clock;

struct Figures {
  long rss_kb = 0, anon_kb = 0, file_kb = 0, hwm_kb = 0;
  double load_s = 0;
  uint64_t queue_length = 0;
};

bool fill(const fs::path& state_dir, size_t queued) {
  fs::create_directories(state_dir);
  dispatcher::Store st;
  std::string err;
  bool ok = st.open((state_dir / "simpleci.db").string(), &err) && st.begin(&err);
  std::mt19937_64 rng(42);
  static const char* hex = "0123456789abcdef";
  std::string commit(40, '0');
  const int64_t t0 = 1'700'000'000'000;
  for (size_t i = 0; ok && i < queued; ++i) {
    for (auto& c : commit) c = hex[rng() % 16];
    const std::string branch = i % 4 == 0 ? "release-" + std::to_string(i % 8) : "main";
    ok = st.insert_job(commit, branch, t0 + static_cast<int64_t>(i), &err) != 0;
  }
  if (ok) ok = st.commit(&err);
  if (!ok) std::fprintf(stderr, "simpleci-bench: cannot fill the store: %s\n", err.c_str());
  return ok;
}

void read_status(pid_t pid, Figures* f) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  auto kb = [&](const char* key, long* out) {
    if (line.rfind(key, 0) == 0) *out = std::stol(line.substr(std::string(key).size()));
  };
  while (std::getline(in, line)) {
    kb("VmRSS:", &f->rss_kb);
    kb("RssAnon:", &f->anon_kb);
    kb("RssFile:", &f->file_kb);
    kb("VmHWM:", &f->hwm_kb);
  }
}

// Starts the dispatcher on dir/state, times it until it answers STATUS, waits `settle` for it to
// go idle (it hands freed memory back when a busy loop goes idle), reads its memory, stops it.
bool measure(const fs::path& dir, const QueueOptions& o, Figures* f) {
  const fs::path exe = o.dispatcher_bin.empty() ? self_dir() / "simpleci-dispatcher" : fs::path(o.dispatcher_bin);
  const auto t0 = Clock::now();
  const pid_t pid = start({exe.string(), "--bind", "tcp://127.0.0.1:0", "--state-dir", (dir / "state").string(),
                           "--results-dir", (dir / "results").string(), "--log-dir", (dir / "logs").string(),
                           "--log-level", "warn", "--max-queued", "10000000"},
                          dir / "dispatcher.out");
  std::string ep;
  wait_for(
      [&] {
        std::ifstream in(dir / "state" / "endpoint");
        std::getline(in, ep);
        return ep.rfind("tcp://", 0) == 0;
      },
      std::chrono::milliseconds(o.timeout_s * 1000), std::chrono::milliseconds(5));
  bool ok = ep.rfind("tcp://", 0) == 0;
  if (ok) {
    zmq::context_t ctx(1);
    zmq::socket_t client = net::make_dealer(ctx, ep);
    net::send(client, msg::StatusRequest{1});
    zmq::pollitem_t item{client.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(o.timeout_s * 1000));
    auto r = net::recv(client, true, 2);
    msg::Decoded d = r ? net::decode_frames(*r, 0) : msg::Decoded{};
    const auto* rep = d.ok() ? std::get_if<msg::StatusReply>(&d.message) : nullptr;
    ok = rep != nullptr;
    if (rep) f->queue_length = rep->queue_length;
    f->load_s = std::chrono::duration<double>(Clock::now() - t0).count();
    std::this_thread::sleep_for(std::chrono::milliseconds(o.settle_ms));
    read_status(pid, f);
  }
  if (!ok) std::fprintf(stderr, "simpleci-bench: the dispatcher did not answer (%s)\n", exe.c_str());
  stop(pid);
  return ok;
}

double round1(double v) { return std::round(v * 10) / 10; }

}  // namespace

int run_queue(const QueueOptions& o) {
  const fs::path tmp = make_temp_dir(o.work_dir);
  Figures empty, full;
  const auto f0 = Clock::now();
  bool ok = fill(tmp / "empty" / "state", 0) && fill(tmp / "full" / "state", o.queued);
  const double fill_s = std::chrono::duration<double>(Clock::now() - f0).count();
  ok = ok && measure(tmp / "empty", o, &empty) && measure(tmp / "full", o, &full);
  if (ok && full.queue_length != o.queued) {
    std::fprintf(stderr, "simpleci-bench: the dispatcher reports %llu queued jobs, not %zu\n",
                 static_cast<unsigned long long>(full.queue_length), o.queued);
    ok = false;
  }
  const double per_job = o.queued ? (full.rss_kb - empty.rss_kb) * 1024.0 / o.queued : 0;
  std::printf("queue: %zu queued jobs stored in %.1f s\n", o.queued, fill_s);
  std::printf("  empty store: RSS %ld KiB (anon %ld, file %ld), peak %ld KiB, answers after %.2f s\n",
              empty.rss_kb, empty.anon_kb, empty.file_kb, empty.hwm_kb, empty.load_s);
  std::printf("  %zu queued:  RSS %ld KiB (anon %ld, file %ld), peak %ld KiB, answers after %.2f s\n",
              o.queued, full.rss_kb, full.anon_kb, full.file_kb, full.hwm_kb, full.load_s);
  std::printf("  %.1f bytes of RSS per queued job\n", per_job);
  nlohmann::json j = {{"queued", o.queued},
                      {"rss_empty_kb", empty.rss_kb},
                      {"rss_anon_empty_kb", empty.anon_kb},
                      {"rss_file_empty_kb", empty.file_kb},
                      {"rss_kb", full.rss_kb},
                      {"rss_anon_kb", full.anon_kb},
                      {"rss_file_kb", full.file_kb},
                      {"peak_rss_kb", full.hwm_kb},
                      {"bytes_per_queued_job", round1(per_job)},
                      {"load_ms", std::lround(full.load_s * 1000)},
                      {"load_empty_ms", std::lround(empty.load_s * 1000)},
                      {"ok", ok}};
  std::printf("%s\n", j.dump().c_str());
  std::error_code ec;
  if (!o.keep) fs::remove_all(tmp, ec);
  return ok ? 0 : 1;
}

}  // namespace simpleci::bench
