// `simpleci-bench web`: what simpleci-web promises under load, through the real pipeline.
//
// 1. Burst: --clients SSE clients on /api/events, one push of --commits commits; for each
//    client and commit, the time from the result file (<commit>.json appearing, seen with
//    inotify) to that client's job_finished event. Late = more than 100 ms after the file.
//    Fan-out: per commit, the first client's event to the last one's, by the kernel's arrival
//    stamps on each client socket (SO_TIMESTAMPNS), so that this one reader, which shares the
//    cores with what it measures and reads 200 sockets in turn, does not count its own delay;
//    the same spread by parse time is printed beside it. simpleci-web's RSS.
// 2. Readers: a commit whose test prints --output-mib MiB; one reader of /api/jobs/ID/output at
//    --read-mb-s, one that never reads, one that reads 1 MiB and vanishes. The slow reader's
//    bytes must equal the stored result file; the web process's RSS and open descriptors are
//    compared before the readers and after they are gone.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <set>

#include <nlohmann/json.hpp>

#include "tools/bench/http.h"
#include "tools/bench/options.h"
#include "tools/bench/pipeline.h"

namespace simpleci::bench {

namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0, Clock::time_point t) { return std::chrono::duration<double, std::milli>(t - t0).count(); }

// One SSE client: when it saw each job_finished (by commit), and job_started ids. `awaited`:
// the commits whose job_finished the burst waits for (counted in `awaited_seen` as they come).
// CLOCK_REALTIME nanoseconds as a steady-clock time (the kernel stamps arrivals in real time).
Clock::time_point steady_from_real_ns(int64_t ns) {
  static const int64_t offset = [] {
    timespec ts;
    ::clock_gettime(CLOCK_REALTIME, &ts);
    const int64_t real = int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count() - real;
  }();
  return Clock::time_point(std::chrono::nanoseconds(ns + offset));
}

struct SseClient {
  HttpGet http;
  const std::set<std::string>* awaited = nullptr;
  size_t awaited_seen = 0;
  std::map<std::string, Clock::time_point> finished;  // when this reader parsed it
  std::map<std::string, Clock::time_point> arrived;   // when its bytes reached the socket (kernel stamp)
  std::map<std::string, uint64_t> started;  // commit -> job id
  SseParser parser{[this](const std::string& event, const std::string& data) { take(event, data); }};

  // The time is taken before anything is parsed; the two fields are found by their keys (a
  // JSON parse per event and client would make this reader, not the server, the bottleneck).
  void take(const std::string& event, const std::string& data) {
    if (event != "job_finished" && event != "job_started") return;
    const auto at = Clock::now();
    const size_t c = data.find("\"commit\":\"");
    if (c == std::string::npos || data.size() < c + 10 + 40) return;
    const std::string commit = data.substr(c + 10, 40);
    if (event == "job_finished") {
      if (http.rx_time_ns() > 0) arrived.emplace(commit, steady_from_real_ns(http.rx_time_ns()));
      if (finished.emplace(commit, at).second && awaited && awaited->count(commit)) ++awaited_seen;
    } else if (const size_t id = data.find("\"job_id\":"); id != std::string::npos) {
      started[commit] = std::strtoull(data.c_str() + id + 9, nullptr, 10);
    }
  }
  // Reads what is there; false when the stream broke.
  // Reads what is there; false when the stream broke. In small reads, each parsed at once: a
  // read's kernel stamp is the arrival of the last segment it took from, so events in one read
  // share it.
  bool pump() {
    for (int i = 0; i < 128; ++i) {
      std::string bytes;
      if (!http.read_some(8192, &bytes)) {
        parser.feed(bytes);
        return false;
      }
      if (bytes.empty()) return true;
      parser.feed(bytes);
    }
    return true;
  }
};

int free_port() {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = 0;
  if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(s);
  return port;
}

size_t open_fds(pid_t pid) {
  std::error_code ec;
  size_t n = 0;
  for (auto it = fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    ++n;
  }
  return n;
}

double rss_mb(pid_t pid) { return memory(pid).rss_kb / 1024.0; }

// Waits (at most 5 s) until pid's open descriptors stop changing for 500 ms, so connections
// closed a moment ago are gone from the count; the count then.
size_t settled_fds(pid_t pid) {
  size_t n = open_fds(pid);
  auto since = Clock::now();
  const auto deadline = since + std::chrono::seconds(5);
  while (Clock::now() < deadline && Clock::now() - since < std::chrono::milliseconds(500)) {
    ::usleep(50000);
    const size_t m = open_fds(pid);
    if (m != n) {
      n = m;
      since = Clock::now();
    }
  }
  return n;
}

// Polls the clients (and fd_extra, when >= 0) once for up to ms; calls on_extra when it is
// readable. Clients whose stream broke are counted in *broken and closed.
void poll_once(std::vector<std::unique_ptr<SseClient>>& clients, int fd_extra, int ms, const std::function<void()>& on_extra,
               size_t* broken) {
  std::vector<pollfd> fds;
  for (auto& c : clients) fds.push_back({c->http.fd(), POLLIN, 0});
  if (fd_extra >= 0) fds.push_back({fd_extra, POLLIN, 0});
  if (::poll(fds.data(), fds.size(), ms) <= 0) return;
  for (size_t i = 0; i < clients.size(); ++i) {
    if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    if (!clients[i]->pump()) {
      ++*broken;
      clients[i]->http.close();
    }
  }
  if (fd_extra >= 0 && (fds.back().revents & POLLIN)) on_extra();
}

struct BurstFigures {
  double late_p50 = 0, late_p99 = 0, late_max = 0, rss_connected = 0, rss_max = 0;
  double fanout_p99 = 0;         // by the kernel's arrival stamps
  double fanout_parsed_p99 = 0;  // by when this reader parsed each event
  size_t late = 0, missing = 0, broken = 0, unstamped = 0;
};

constexpr int kClientBuffer = 8 << 20;  // a burst of 500 commits is ~1 MB per client

bool burst(Pipeline& p, const Repo& repo, const WebOptions& o, int port, BurstFigures* f) {
  std::vector<std::unique_ptr<SseClient>> clients;
  for (int i = 0; i < o.clients; ++i) {
    clients.push_back(std::make_unique<SseClient>());
    // Room for the whole burst in each client's socket: the web's writes never wait for this
    // one reader (see HttpGet::open).
    if (!clients.back()->http.open(port, "/api/events", kClientBuffer)) {
      std::fprintf(stderr, "simpleci-bench: SSE client %d cannot connect: %s\n", i, clients.back()->http.error().c_str());
      return false;
    }
    clients.back()->http.stamp_arrivals();
    if (i == 0 && clients.back()->http.receive_buffer() < kClientBuffer) {
      std::printf("note: SSE clients got a %d-byte receive buffer, not %d: the reader's pace may hold the web back\n",
                  clients.back()->http.receive_buffer(), kClientBuffer);
    }
  }
  const bool connected = wait_for(
      [&] {
        poll_once(clients, -1, 20, {}, &f->broken);
        for (auto& c : clients) {
          if (c->http.status() != 200) return false;
        }
        return true;
      },
      std::chrono::seconds(20), std::chrono::milliseconds(0));
  if (!connected || f->broken > 0) {
    std::fprintf(stderr, "simpleci-bench: not every SSE client got a 200 event stream (%zu broke)\n", f->broken);
    return false;
  }
  f->rss_connected = f->rss_max = rss_mb(p.web);

  const int ino = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  ::inotify_add_watch(ino, p.results().c_str(), IN_MOVED_TO | IN_CLOSE_WRITE);
  std::map<std::string, Clock::time_point> file_at;
  auto read_inotify = [&] {
    alignas(inotify_event) char buf[65536];
    ssize_t n;
    while ((n = ::read(ino, buf, sizeof buf)) > 0) {
      for (char* at = buf; at < buf + n;) {
        const auto* e = reinterpret_cast<const inotify_event*>(at);
        const std::string name = e->len ? e->name : "";
        if (name.size() == 45 && name.compare(40, 5, ".json") == 0) file_at.emplace(name.substr(0, 40), Clock::now());
        at += sizeof(inotify_event) + e->len;
      }
    }
  };
  const std::vector<std::string> ids = add_commits(repo.work, o.commits, "web burst");
  if (ids.empty() || run(git_argv(repo.work, {"push", "-q", "origin", "main"})) != 0) {
    ::close(ino);
    return false;
  }
  const std::set<std::string> wanted(ids.begin(), ids.end());
  // Counted as events come, so the check after every poll costs O(clients), not O(clients x N):
  // this reader shares the machine with what it measures.
  for (auto& c : clients) c->awaited = &wanted;
  auto all_in = [&] {
    if (file_at.size() < ids.size()) return false;  // only the burst's files appear meanwhile
    for (auto& c : clients) {
      if (c->http.fd() >= 0 && c->awaited_seen < wanted.size()) return false;
    }
    return true;
  };
  const auto deadline = Clock::now() + std::chrono::milliseconds(60000 + 250LL * o.commits);
  auto last_rss = Clock::now();
  while (!all_in() && Clock::now() < deadline) {
    poll_once(clients, ino, 50, read_inotify, &f->broken);
    if (Clock::now() - last_rss > std::chrono::milliseconds(100)) {
      f->rss_max = std::max(f->rss_max, rss_mb(p.web));
      last_rss = Clock::now();
    }
  }
  // Events that came a little after the last file (or files after events) are still read.
  for (int i = 0; i < 10; ++i) poll_once(clients, ino, 20, read_inotify, &f->broken);
  ::close(ino);

  std::vector<double> late, spread, parsed_spread;
  for (const auto& id : ids) {
    Clock::time_point first = Clock::time_point::max(), last = Clock::time_point::min();
    Clock::time_point pfirst = first, plast = last;
    size_t stamped = 0, seen = 0;
    for (auto& c : clients) {
      auto it = c->finished.find(id);
      if (it == c->finished.end()) {
        ++f->missing;
        continue;
      }
      ++seen;
      pfirst = std::min(pfirst, it->second);
      plast = std::max(plast, it->second);
      if (auto a = c->arrived.find(id); a != c->arrived.end()) {
        ++stamped;
        first = std::min(first, a->second);
        last = std::max(last, a->second);
      }
      auto file = file_at.find(id);
      if (file != file_at.end()) late.push_back(std::max(0.0, ms_since(file->second, it->second)));
    }
    if (pfirst <= plast) parsed_spread.push_back(ms_since(pfirst, plast));
    if (stamped == seen && first <= last) spread.push_back(ms_since(first, last));
    f->unstamped += seen - stamped;
  }
  for (double l : late) f->late += l > 100 ? 1 : 0;
  f->late_p50 = percentile(late, 50);
  f->late_p99 = percentile(late, 99);
  f->late_max = percentile(late, 100);
  f->fanout_p99 = percentile(spread, 99);
  f->fanout_parsed_p99 = percentile(parsed_spread, 99);
  if (file_at.size() < ids.size()) {
    std::fprintf(stderr, "simpleci-bench: %zu of %zu result files appeared (see %s)\n", file_at.size(), ids.size(),
                 p.dir.c_str());
  }
  return file_at.size() == ids.size();
}

struct ReaderFigures {
  uint64_t bytes = 0, stored = 0;
  bool matches = false;
  double seconds = 0, mb_per_s = 0, rss_before = 0, rss_max = 0, rss_after = 0;
  size_t fds_before = 0, fds_after = 0;
};

// A commit whose test prints `bytes` bytes; its id ("" on failure).
std::string loud_commit(const Repo& repo, uint64_t bytes) {
  static int round = 0;
  std::ofstream(repo.test()) << "#!/bin/sh\n# round " << ++round
                             << "\nyes 'simpleci-bench web: a long line of test output, 0123456789' | head -c " << bytes
                             << "\nexit 0\n";
  if (run(git_argv(repo.work, {"commit", "-qam", "loud test"})) != 0 ||
      run(git_argv(repo.work, {"push", "-q", "origin", "main"})) != 0) {
    return "";
  }
  return git_head(repo.work);
}

bool readers(Pipeline& p, const Repo& repo, const WebOptions& o, int port, ReaderFigures* f) {
  std::vector<std::unique_ptr<SseClient>> watch;
  watch.push_back(std::make_unique<SseClient>());
  size_t broken = 0;
  f->fds_before = settled_fds(p.web);  // the burst's clients have just hung up
  f->rss_before = f->rss_max = rss_mb(p.web);
  if (!watch[0]->http.open(port, "/api/events")) return false;
  const std::string commit = loud_commit(repo, static_cast<uint64_t>(o.output_mib) << 20);
  if (commit.empty()) return false;
  uint64_t job = 0;
  if (!wait_for(
          [&] {
            poll_once(watch, -1, 20, {}, &broken);
            auto it = watch[0]->started.find(commit);
            job = it == watch[0]->started.end() ? 0 : it->second;
            return job != 0;
          },
          std::chrono::seconds(60), std::chrono::milliseconds(0))) {
    std::fprintf(stderr, "simpleci-bench: no job_started event for the loud commit\n");
    return false;
  }
  const std::string path = "/api/jobs/" + std::to_string(job) + "/output";
  HttpGet slow, stalled, vanishing;
  if (!slow.open(port, path, 64 << 10) || !stalled.open(port, path, 16 << 10) || !vanishing.open(port, path, 64 << 10)) {
    return false;
  }
  std::string body, dropped;
  const double rate = o.read_kb_s * 1e3;  // bytes per second
  const auto t0 = Clock::now();
  const auto deadline = t0 + std::chrono::seconds(60) +
                        std::chrono::milliseconds(static_cast<int64_t>(3000.0 * (static_cast<double>(o.output_mib) * 1048576) / rate));
  bool slow_ok = true;
  while (slow_ok && !slow.ended() && Clock::now() < deadline) {
    const double allowed = rate * std::chrono::duration<double>(Clock::now() - t0).count() - static_cast<double>(body.size());
    if (allowed >= 4096) {
      slow_ok = slow.read_some(static_cast<size_t>(std::min(allowed, 65536.0)), &body) || slow.ended();
    }
    if (vanishing.fd() >= 0) {
      if (!vanishing.read_some(1 << 16, &dropped) || dropped.size() >= (1u << 20)) vanishing.close();
    }
    f->rss_max = std::max(f->rss_max, rss_mb(p.web));
    ::usleep(2000);  // the pace of a 4 MB/s reader: a few KiB per turn
  }
  f->seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  stalled.close();
  vanishing.close();
  if (!slow.ended()) {
    std::fprintf(stderr, "simpleci-bench: the slow reader got %zu bytes and no end (%s)\n", body.size(), slow.error().c_str());
    return false;
  }
  if (!p.wait_result(commit, std::chrono::seconds(30))) return false;
  std::ifstream in(p.results() / commit, std::ios::binary);
  const std::string stored((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  f->bytes = body.size();
  f->stored = stored.size();
  f->matches = body == stored;
  f->mb_per_s = static_cast<double>(body.size()) / 1e6 / f->seconds;
  // What the readers cost once they are gone (the event stream that found the job ends too).
  watch.clear();
  f->fds_after = settled_fds(p.web);
  f->rss_after = rss_mb(p.web);
  return true;
}

}  // namespace

int run_web(const WebOptions& o) {
  TempDirGuard tmp;
  Pipeline p;
  if (!open_run(o, &tmp, &p)) return 1;
  if (::access(exe(o.bin, "simpleci-web").c_str(), X_OK) != 0) {
    std::fprintf(stderr, "simpleci-bench: no executable %s (--bin)\n", exe(o.bin, "simpleci-web").c_str());
    return 1;
  }
  std::printf("web: %d SSE clients, a burst of %d commits on %d runners; a %d MiB output read at %.1f MB/s\n", o.clients,
              o.commits, o.runners, o.output_mib, o.read_kb_s / 1000.0);
  std::fflush(stdout);
  Repo repo;
  const int port = free_port();
  BurstFigures b;
  ReaderFigures r;
  const bool ok = make_repo(tmp.path, &repo) && start_pipeline(p, repo, o.runners, 1, o.poll_ms) && p.start_web(port) &&
                  burst(p, repo, o, port, &b) && readers(p, repo, o, port, &r);
  // The same again: what stays after the first round is either kept for good (the second adds
  // as much again) or memory the process holds on to (the second adds nothing).
  ReaderFigures r2;
  const bool ok2 = ok && readers(p, repo, o, port, &r2);
  p.stop_all();
  if (!ok || !ok2) {
    tmp.keep = true;
    return 1;
  }
  std::printf("burst: job_finished after its result file: p50 %.1f ms, p99 %.1f ms, max %.1f ms; %zu late (> 100 ms), "
              "%zu missing (target: p99 <= 100 ms, none late)\n",
              b.late_p50, b.late_p99, b.late_max, b.late, b.missing);
  std::printf("fan-out to %d clients: p99 %.1f ms from the first client's socket to the last one's (kernel arrival "
              "stamps; %zu events unstamped), %.1f ms as this one reader parsed them; web RSS %.1f MB connected, "
              "%.1f MB max (target <= 50 MB, fan-out p99 <= 100 ms)\n",
              o.clients, b.fanout_p99, b.unstamped, b.fanout_parsed_p99, b.rss_connected, b.rss_max);
  std::printf("reader at %.1f MB/s: %llu of %llu stored bytes, %s, %.1f s (%.2f MB/s); web RSS %.1f MB before, %.1f max, "
              "%.1f after; open fds %zu before, %zu after\n",
              o.read_kb_s / 1000.0, static_cast<unsigned long long>(r.bytes), static_cast<unsigned long long>(r.stored),
              r.matches ? "identical" : "DIFFERENT", r.seconds, r.mb_per_s, r.rss_before, r.rss_max, r.rss_after,
              r.fds_before, r.fds_after);
  std::printf("the readers again: %s, web RSS %.1f MB before, %.1f after; open fds %zu before, %zu after\n",
              r2.matches ? "identical" : "DIFFERENT", r2.rss_before, r2.rss_after, r2.fds_before, r2.fds_after);
  nlohmann::json j = {{"bench", "web"},
                      {"clients", o.clients},
                      {"commits", o.commits},
                      {"event_after_file_ms_p50", rounded(b.late_p50)},
                      {"event_after_file_ms_p99", rounded(b.late_p99)},
                      {"event_after_file_ms_max", rounded(b.late_max)},
                      {"late_events", b.late},
                      {"fanout_parsed_ms_p99", rounded(b.fanout_parsed_p99)},
                      {"unstamped_events", b.unstamped},
                      {"missing_events", b.missing},
                      {"broken_streams", b.broken},
                      {"fanout_ms_p99", rounded(b.fanout_p99)},
                      {"web_rss_mb_connected", rounded(b.rss_connected, 1)},
                      {"web_rss_mb_max", rounded(std::max(b.rss_max, r.rss_max), 1)},
                      {"reader_bytes", r.bytes},
                      {"stored_bytes", r.stored},
                      {"reader_matches_stored", r.matches},
                      {"reader_mb_per_s", rounded(r.mb_per_s)},
                      {"web_rss_mb_before_readers", rounded(r.rss_before, 1)},
                      {"web_rss_mb_after_readers", rounded(r.rss_after, 1)},
                      {"web_fds_before_readers", r.fds_before},
                      {"web_fds_after_readers", r.fds_after},
                      {"web_rss_mb_after_second_readers", rounded(r2.rss_after, 1)},
                      {"web_fds_after_second_readers", r2.fds_after}};
  std::printf("%s\n", j.dump().c_str());
  const bool met = b.missing == 0 && b.late == 0 && r.matches && r2.matches;
  return met ? 0 : 3;
}

}  // namespace simpleci::bench
