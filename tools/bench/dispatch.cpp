// `simpleci-bench dispatch`: jobs through the real dispatcher (real store, real result files)
// with N fake runners that answer every JOB at once, beside the same message pattern through a
// bare in-process ROUTER/DEALER broker with no store (the ceiling).
#include "tools/bench/options.h"

#include <atomic>
#include <cstdio>
#include <cmath>
#include <cstring>
#include <deque>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "messages/codec.h"
#include "common/fsutil.h"
#include "net/transport.h"
#include "tools/bench/pipeline.h"
#include "tools/bench/proc.h"

namespace simpleci::bench {

namespace {

using Clock = std::chrono::steady_clock;
int64_t now_ns() { return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count(); }

struct Shared {
  explicit Shared(size_t n) : ack_ns(n + 16) {}
  std::vector<std::atomic<int64_t>> ack_ns;  // by job id (ids start at 1 in a fresh store)
  std::atomic<size_t> done{0};
  std::atomic<size_t> duplicates{0};
  std::atomic<bool> stop{false};
};

void fake_runner(zmq::context_t& ctx, const std::string& ep, int index, Shared& sh) {
  zmq::socket_t s = net::make_dealer(ctx, ep);
  net::send(s, msg::Register{"bench-" + std::to_string(index), 1, {}});
  auto last_hb = Clock::now();
  while (!sh.stop) {
    zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(50));
    while (auto r = net::recv(s, true, 2)) {
      msg::Decoded d = net::decode_frames(*r, 0);
      if (!d.ok()) continue;
      if (auto* j = std::get_if<msg::Job>(&d.message)) {
        int64_t wall = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch()).count();
        net::send(s, msg::Result{j->job_id, j->attempt, msg::JobStatus::kPassed, 0, wall, wall, false, "ok\n"});
      } else if (auto* a = std::get_if<msg::ResultAck>(&d.message)) {
        if (a->job_id < sh.ack_ns.size()) {
          int64_t expected = 0;
          if (sh.ack_ns[a->job_id].compare_exchange_strong(expected, now_ns())) ++sh.done;
          else ++sh.duplicates;
        }
      } else if (std::holds_alternative<msg::Reregister>(d.message)) {
        net::send(s, msg::Register{"bench-" + std::to_string(index), 1, {}});
      }
    }
    if (Clock::now() - last_hb > std::chrono::milliseconds(300)) {
      net::send(s, msg::Heartbeat{});
      last_hb = Clock::now();
    }
  }
}

std::string random_commit(std::mt19937_64& rng) {
  static const char* hex = "0123456789abcdef";
  std::string s(40, '0');
  for (auto& c : s) c = hex[rng() % 16];
  return s;
}

// The bare broker's worker: says ready, answers every job at once, counts acknowledgements.
void ceiling_worker(zmq::context_t& ctx, const std::string& ep, const std::atomic<bool>& stop,
                    std::atomic<size_t>& done) {
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.connect(ep);
  s.send(zmq::str_buffer("R"), zmq::send_flags::none);
  while (!stop) {
    zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(50));
    zmq::message_t m;
    while (s.recv(m, zmq::recv_flags::dontwait)) {
      if (m.size() > 0 && static_cast<const char*>(m.data())[0] == 'J') {
        std::string reply = "D" + m.to_string().substr(1);
        s.send(zmq::buffer(reply), zmq::send_flags::none);
      } else if (m.size() > 0 && static_cast<const char*>(m.data())[0] == 'A') {
        ++done;
      }
    }
  }
}

// The bare broker's loop: accepts "commits" (C), hands each to a free worker (J), acknowledges
// the worker's answer (D -> A).
void ceiling_broker(zmq::socket_t& router, const std::atomic<bool>& stop) {
  std::deque<std::string> free_peers, queue;
  while (!stop) {
    zmq::pollitem_t item{router.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(50));
    zmq::message_t id, body;
    while (router.recv(id, zmq::recv_flags::dontwait)) {
      (void)router.recv(body, zmq::recv_flags::none);
      char kind = body.size() ? static_cast<const char*>(body.data())[0] : '?';
      std::string peer = id.to_string();
      if (kind == 'C') {
        router.send(zmq::buffer(peer), zmq::send_flags::sndmore);
        router.send(zmq::str_buffer("K"), zmq::send_flags::none);
        queue.push_back(body.to_string().substr(1));
      } else if (kind == 'R') {
        free_peers.push_back(peer);
      } else if (kind == 'D') {
        router.send(zmq::buffer(peer), zmq::send_flags::sndmore);
        router.send(zmq::str_buffer("A"), zmq::send_flags::none);
        free_peers.push_back(peer);
      }
    }
    while (!queue.empty() && !free_peers.empty()) {
      std::string job = "J" + queue.front();
      queue.pop_front();
      router.send(zmq::buffer(free_peers.front()), zmq::send_flags::sndmore);
      router.send(zmq::buffer(job), zmq::send_flags::none);
      free_peers.pop_front();
    }
  }
}

// The bare broker: the same exchange as the dispatcher's, with tiny raw string frames (no
// codec, no store); jobs per second.
double ceiling(int runners, size_t jobs, size_t window) {
  zmq::context_t ctx(1);
  zmq::socket_t router(ctx, zmq::socket_type::router);
  router.bind("tcp://127.0.0.1:*");
  std::string ep = router.get(zmq::sockopt::last_endpoint);
  std::atomic<bool> stop{false};
  std::atomic<size_t> done{0};
  std::vector<std::thread> workers;
  for (int i = 0; i < runners; ++i) {
    workers.emplace_back([&] { ceiling_worker(ctx, ep, stop, done); });
  }
  zmq::socket_t sub(ctx, zmq::socket_type::dealer);
  sub.connect(ep);
  std::thread broker([&] { ceiling_broker(router, stop); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let the workers say ready
  auto t0 = Clock::now();
  size_t sent = 0;
  while (done < jobs) {
    while (sent < jobs && sent - done < window) {
      std::string c = "C" + std::to_string(sent++);
      sub.send(zmq::buffer(c), zmq::send_flags::none);
    }
    zmq::message_t m;
    while (sub.recv(m, zmq::recv_flags::dontwait)) {
    }
    zmq::pollitem_t item{sub.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(1));
    if (Clock::now() - t0 > std::chrono::seconds(120)) break;
  }
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  stop = true;
  broker.join();
  for (auto& w : workers) w.join();
  return static_cast<double>(done.load()) / secs;
}

// The disk's own ceiling: the same two atomic file writes per job the dispatcher makes, in the
// same folder, with nothing else going on.
double disk_ceiling(const fs::path& dir, size_t jobs) {
  fs::create_directories(dir);
  std::mt19937_64 rng(777);
  auto t0 = Clock::now();
  std::string err;
  for (size_t i = 0; i < jobs; ++i) {
    std::string c = random_commit(rng);
    write_file_atomic(dir / c, "ok\n", false, &err);
    write_file_atomic(dir / (c + ".json"), "{\"status\":\"passed\"}\n", false, &err);
  }
  return static_cast<double>(jobs) / std::chrono::duration<double>(Clock::now() - t0).count();
}

// The commits the submitter sends and what became of each.
struct Submission {
  explicit Submission(size_t jobs) : commits(jobs), sent_ns(jobs, 0), job_of(jobs, 0) {
    std::mt19937_64 rng(12345);
    for (auto& c : commits) c = random_commit(rng);
  }
  std::vector<std::string> commits;
  std::vector<int64_t> sent_ns;  // when commit i was sent
  std::vector<uint64_t> job_of;  // the job ACCEPTED named for commit i
  bool timed_out = false;
  double secs = 0;  // from the first commit until the last acknowledgement (or the timeout)
};

// Sends COMMITs, at most o.window unacknowledged at once, until every job is acknowledged to
// its runner or o.timeout_s passed.
void submit(zmq::socket_t& sub, const DispatchOptions& o, Shared& sh, Submission& run) {
  size_t sent = 0;
  auto t0 = Clock::now();
  while (sh.done < o.jobs) {
    while (sent < o.jobs && sent - std::min(sent, sh.done.load()) < o.window) {
      run.sent_ns[sent] = now_ns();
      if (!net::send(sub, msg::Commit{sent + 1, run.commits[sent], "bench", false})) break;
      ++sent;
    }
    zmq::pollitem_t item{sub.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(1));
    while (auto r = net::recv(sub, true, 2)) {
      msg::Decoded d = net::decode_frames(*r, 0);
      if (auto* a = d.ok() ? std::get_if<msg::Accepted>(&d.message) : nullptr) {
        if (a->request_id >= 1 && a->request_id <= o.jobs) run.job_of[a->request_id - 1] = a->job_id;
      }
    }
    if (Clock::now() - t0 > std::chrono::seconds(o.timeout_s)) {
      run.timed_out = true;
      break;
    }
  }
  run.secs = std::chrono::duration<double>(Clock::now() - t0).count();
}

// Commit -> acknowledgement latencies, in ms.
std::vector<double> latencies(const Submission& run, const Shared& sh) {
  std::vector<double> lat;
  for (size_t i = 0; i < run.job_of.size(); ++i) {
    uint64_t j = run.job_of[i];
    if (j > 0 && j < sh.ack_ns.size() && sh.ack_ns[j] > 0) lat.push_back((sh.ack_ns[j] - run.sent_ns[i]) / 1e6);
  }
  return lat;
}

// An event-feed subscriber: SUBSCRIBE, then reads everything until stop (subscribing again
// after a drop, as a real one does).
struct Feeds {
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> events{0}, drops{0}, messages{0};
};

void subscriber(zmq::context_t& ctx, const std::string& ep, Feeds& f) {
  zmq::socket_t s = net::make_dealer(ctx, ep);
  uint64_t rid = 1;
  net::send(s, msg::Subscribe{rid, {}, false});
  while (!f.stop) {
    zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(50));
    while (auto r = net::recv(s, true, 2)) {
      msg::Decoded d = net::decode_frames(*r, 0);
      if (!d.ok()) continue;
      std::vector<msg::Event> events;
      if (auto* e = std::get_if<msg::Event>(&d.message)) events.push_back(std::move(*e));
      if (auto* b = std::get_if<msg::Events>(&d.message)) events = std::move(b->events);
      f.messages += !events.empty();
      for (const auto& e : events) {
        ++f.events;
        if (e.kind == static_cast<uint32_t>(msg::EventKind::kDropped)) {
          ++f.drops;
          net::send(s, msg::Subscribe{++rid, {}, false});
        }
      }
    }
  }
}

// What run_dispatch measured.
struct Figures {
  double rate = 0, files_rate = 0, ceil_rate = 0, disk_rate = 0;
  std::vector<double> lat;
  long rss = 0, hwm = 0;
  size_t files = 0;
  double cpu_ms_per_job = 0;  // the dispatcher's, from its start until the last result file
};

// Measures and prints the two ceilings (now, after the dispatcher stopped).
void measure_ceilings(const DispatchOptions& o, const fs::path& tmp, Figures& f) {
  f.ceil_rate = ceiling(o.runners, o.jobs, o.window);
  std::printf("ceiling (bare ROUTER/DEALER, same pattern, no store): %.0f jobs/s\n", f.ceil_rate);
  f.disk_rate = disk_ceiling(tmp / "disk-ceiling", o.jobs);
  std::printf("disk ceiling (2 atomic result files per job, same folder): %.0f jobs/s\n", f.disk_rate);
}

// The runs with subscribers beside those without (alternating, each on a fresh dispatcher):
// throughput and the dispatcher's CPU per job, medians of each side.
struct Comparison {
  std::vector<double> rate_without, rate_with, cpu_without, cpu_with;
};

void print_json(const DispatchOptions& o, const Figures& f, const Comparison& c) {
  nlohmann::json j = {{"jobs_per_s", std::round(f.rate)},
                      {"p50_ms", std::round(percentile(f.lat, 50) * 100) / 100},
                      {"p99_ms", std::round(percentile(f.lat, 99) * 100) / 100},
                      {"ceiling_jobs_per_s", std::round(f.ceil_rate)},
                      {"ratio_to_ceiling", std::round(f.rate / f.ceil_rate * 1000) / 1000},
                      {"disk_ceiling_jobs_per_s", std::round(f.disk_rate)},
                      {"ratio_to_disk_ceiling", std::round(f.rate / f.disk_rate * 1000) / 1000},
                      {"runners", o.runners},
                      {"jobs", o.jobs},
                      {"dispatcher_rss_kb", f.rss},
                      {"dispatcher_peak_rss_kb", f.hwm},
                      {"dispatcher_cpu_ms_per_job", std::round(f.cpu_ms_per_job * 1000) / 1000},
                      {"result_files", f.files},
                      {"files_jobs_per_s", std::round(f.files_rate)}};
  if (o.subscribers > 0) {
    const double rw = median(c.rate_without), rs = median(c.rate_with);
    const double cw = median(c.cpu_without), cs = median(c.cpu_with);
    j["subscribers"] = o.subscribers;
    j["pairs"] = c.rate_with.size();
    j["median_jobs_per_s_without"] = std::round(rw);
    j["median_jobs_per_s_with_subscribers"] = std::round(rs);
    j["ratio_with_subscribers"] = rw > 0 ? std::round(rs / rw * 1000) / 1000 : 0;
    j["median_cpu_ms_per_job_without"] = std::round(cw * 1000) / 1000;
    j["median_cpu_ms_per_job_with_subscribers"] = std::round(cs * 1000) / 1000;
    j["cpu_ratio_with_subscribers"] = cw > 0 ? std::round(cs / cw * 1000) / 1000 : 0;
  }
  std::printf("%s\n", j.dump().c_str());
}

size_t wait_for_files(const fs::path& tmp, const Submission& run, const DispatchOptions& o) {
  auto count_files = [&] {
    size_t n = 0;
    for (const auto& c : run.commits) n += fs::exists(tmp / "results" / (c + ".json"));
    return n;
  };
  size_t files = 0;
  wait_for([&] { return (files = count_files()) == o.jobs; }, std::chrono::seconds(o.timeout_s),
           std::chrono::milliseconds(50));
  return files;
}

// Runs the jobs through the dispatcher at ep (pid) with o.runners fake runners.
Figures measure(const DispatchOptions& o, const fs::path& tmp, const std::string& ep, pid_t pid,
                Shared& sh, Submission& run, int subscribers = 0) {
  zmq::context_t ctx(1);
  Feeds feeds;
  std::vector<std::thread> subs;
  for (int i = 0; i < subscribers; ++i) subs.emplace_back(subscriber, std::ref(ctx), ep, std::ref(feeds));
  std::vector<std::thread> runners;
  for (int i = 0; i < o.runners; ++i) runners.emplace_back(fake_runner, std::ref(ctx), ep, i, std::ref(sh));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // registrations
  zmq::socket_t sub = net::make_dealer(ctx, ep);
  const auto t0 = Clock::now();
  submit(sub, o, sh, run);
  Figures f;
  memory_kb(pid, &f.rss, &f.hwm);
  sh.stop = true;
  for (auto& t : runners) t.join();
  feeds.stop = true;
  for (auto& t : subs) t.join();
  if (subscribers > 0) {
    std::printf("%d subscribers: %llu events read in %llu messages, %llu drops\n", subscribers,
                static_cast<unsigned long long>(feeds.events.load()), static_cast<unsigned long long>(feeds.messages.load()),
                static_cast<unsigned long long>(feeds.drops.load()));
  }
  f.files = wait_for_files(tmp, run, o);
  const double files_secs = std::chrono::duration<double>(Clock::now() - t0).count();
  f.cpu_ms_per_job = ticks_ms(cpu_ticks(pid)) / static_cast<double>(o.jobs);
  stop(pid);
  f.lat = latencies(run, sh);
  f.rate = static_cast<double>(sh.done.load()) / run.secs;
  f.files_rate = static_cast<double>(f.files) / files_secs;
  std::printf("dispatcher%s: %zu jobs done in %.2f s = %.0f jobs/s, p50 %.2f ms, p99 %.2f ms, RSS %ld KiB (peak %ld KiB), CPU %.3f ms/job\n",
              subscribers > 0 ? " (with subscribers)" : "", sh.done.load(), run.secs, f.rate, percentile(f.lat, 50),
              percentile(f.lat, 99), f.rss, f.hwm, f.cpu_ms_per_job);
  std::printf("result files: %zu, the last written %.2f s after the first commit = %.0f jobs/s\n", f.files,
              files_secs, f.files_rate);
  return f;
}

}  // namespace

int run_dispatch(const DispatchOptions& o) {
  fs::path tmp = make_temp_dir(o.work_dir);
  pid_t pid = -1;
  const std::string ep = start_dispatcher(tmp, o.dispatcher_bin, &pid, o.dispatcher_args);
  if (ep.empty()) return 1;
  std::printf("dispatch: %d fake runners, %zu jobs, window %zu, dispatcher at %s (pid %d)\n",
              o.runners, o.jobs, o.window, ep.c_str(), pid);
  Shared sh(o.jobs);
  Submission run(o.jobs);
  Figures f = measure(o, tmp, ep, pid, sh, run);
  measure_ceilings(o, tmp, f);
  bool ok = !run.timed_out && sh.done == o.jobs && f.files == o.jobs && sh.duplicates == 0;
  if (!ok) {
    std::fprintf(stderr, "simpleci-bench: FAILED: %zu/%zu acknowledged, %zu result files, %zu duplicate acks%s\n",
                 sh.done.load(), o.jobs, f.files, sh.duplicates.load(), run.timed_out ? ", timed out" : "");
  }
  Comparison c;
  c.rate_without.push_back(f.rate);
  c.cpu_without.push_back(f.cpu_ms_per_job);
  // The same run with subscribers, then without again, alternating: a noisy machine drifts
  // during a run, and both sides then see the drift alike.
  for (int i = 0; ok && i < o.subscriber_pairs && o.subscribers > 0; ++i) {
    for (const int subs : {o.subscribers, 0}) {
      if (subs == 0 && i + 1 == o.subscriber_pairs) break;  // as many runs without as with
      const fs::path dir = tmp / ("run-" + std::to_string(c.rate_with.size() + c.rate_without.size()));
      pid_t p = -1;
      const std::string e = start_dispatcher(dir, o.dispatcher_bin, &p, o.dispatcher_args);
      if (e.empty()) return 1;
      Shared s2(o.jobs);
      Submission r2(o.jobs);
      const Figures f2 = measure(o, dir, e, p, s2, r2, subs);
      ok = !r2.timed_out && s2.done == o.jobs && f2.files == o.jobs;
      if (!ok) {
        std::fprintf(stderr, "simpleci-bench: FAILED: a run with %d subscribers: %zu/%zu acknowledged, %zu result files\n",
                     subs, s2.done.load(), o.jobs, f2.files);
        break;
      }
      (subs > 0 ? c.rate_with : c.rate_without).push_back(f2.rate);
      (subs > 0 ? c.cpu_with : c.cpu_without).push_back(f2.cpu_ms_per_job);
      std::error_code ec;
      if (!o.keep) fs::remove_all(dir, ec);
    }
  }
  if (ok && o.subscribers > 0) {
    const double rw = median(c.rate_without), rs = median(c.rate_with);
    const double cw = median(c.cpu_without), cs = median(c.cpu_with);
    std::printf("with %d subscribers (medians of %zu runs each): %.0f vs %.0f jobs/s = %.3f of the throughput "
                "without (target >= 0.95); dispatcher CPU %.3f vs %.3f ms/job = %.3f of the cost without\n",
                o.subscribers, c.rate_with.size(), rs, rw, rs / rw, cs, cw, cs / cw);
  }
  print_json(o, f, c);
  std::error_code ec;
  if (!o.keep) fs::remove_all(tmp, ec);
  return ok ? 0 : 1;
}

}  // namespace simpleci::bench
