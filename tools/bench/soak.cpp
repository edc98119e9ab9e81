#include "tools/bench/options.h"

#include <git2.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <optional>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "messages/codec.h"
#include "net/transport.h"
#include "tools/bench/fake_dispatcher.h"
#include "tools/bench/proc.h"

namespace simpleci::bench {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Adds an empty commit (same tree) on top of HEAD of the repository at dir; returns its id.
std::string add_commit(git_repository* repo, int n) {
  git_oid head_id, new_id;
  git_commit* head = nullptr;
  git_tree* tree = nullptr;
  git_signature* sig = nullptr;
  std::string out;
  if (git_reference_name_to_id(&head_id, repo, "HEAD") == 0 && git_commit_lookup(&head, repo, &head_id) == 0 &&
      git_commit_tree(&tree, head) == 0 && git_signature_now(&sig, "bench", "bench@simpleci.invalid") == 0) {
    const git_commit* parents[] = {head};
    std::string message = "soak " + std::to_string(n);
    if (git_commit_create(&new_id, repo, "HEAD", sig, sig, nullptr, message.c_str(), tree, 1, parents) == 0) {
      char hex[GIT_OID_HEXSZ + 1];
      git_oid_tostr(hex, sizeof hex, &new_id);
      out = hex;
    }
  }
  git_signature_free(sig);
  git_tree_free(tree);
  git_commit_free(head);
  return out;
}

// RSS samples of one component: the start is the first sample at or after a tenth of the run.
struct Series {
  long start_kb = 0, end_kb = 0, peak_kb = 0;
  Memory start{}, end{};  // with the anonymous and file-backed parts
  int start_at = -1, iterations = 0;
  void sample(pid_t pid, int done, int total) {
    const Memory m = memory(pid);
    if (m.rss_kb <= 0) return;
    if (start_at < 0 && done >= total / 10) {
      start = m;
      start_kb = m.rss_kb;
      start_at = done;
    }
    end = m;
    end_kb = m.rss_kb;
    peak_kb = std::max(peak_kb, m.hwm_kb);
    iterations = done;
  }
  double growth_per_1000() const {
    int span = iterations - start_at;
    return span > 0 ? 1000.0 * static_cast<double>(end_kb - start_kb) / span : 0;
  }
  void report(const char* name, const char* unit, nlohmann::json* j) const {
    std::printf("%s: %d %s; RSS %ld KiB after %d, %ld KiB at the end, peak %ld KiB; growth %.1f KiB per 1,000 %s"
                " (anonymous %ld -> %ld KiB, file-backed %ld -> %ld KiB)\n",
                name, iterations, unit, start_kb, start_at, end_kb, peak_kb, growth_per_1000(), unit,
                start.anon_kb, end.anon_kb, start.file_kb, end.file_kb);
    const std::string p = name;
    (*j)[p + "_iterations"] = iterations;
    (*j)[p + "_rss_start_kb"] = start_kb;
    (*j)[p + "_rss_end_kb"] = end_kb;
    (*j)[p + "_rss_peak_kb"] = peak_kb;
    (*j)[p + "_anon_start_kb"] = start.anon_kb;
    (*j)[p + "_anon_end_kb"] = end.anon_kb;
    (*j)[p + "_growth_kb_per_1000"] = std::round(growth_per_1000() * 10) / 10;
    std::fflush(stdout);  // a long run shows each component's figures as soon as it has them
  }
};

struct Setup {
  fs::path tmp, upstream, logs;
  git_repository* repo = nullptr;
  ~Setup() { git_repository_free(repo); }
};

bool make_upstream(Setup* s, std::string* err) {
  s->upstream = s->tmp / "upstream";
  s->logs = s->tmp / "logs";
  fs::create_directories(s->upstream / ".simpleci");
  run(git_argv(s->upstream, {"init", "-q", "-b", "main"}));
  std::ofstream(s->upstream / ".simpleci" / "test") << "#!/bin/sh\nexit 0\n";
  fs::permissions(s->upstream / ".simpleci" / "test", fs::perms::owner_exec, fs::perm_options::add);
  run(git_argv(s->upstream, {"add", "-A"}));
  if (run(git_argv(s->upstream, {"commit", "-q", "-m", "first"})) != 0 ||
      git_repository_open(&s->repo, s->upstream.c_str()) != 0) {
    *err = "cannot create the upstream repository in " + s->upstream.string();
    return false;
  }
  return true;
}

// The real runner, one job per new commit; RSS after every job.
bool soak_runner(Setup& s, int count, Series* out, std::string* err) {
  fs::path clone = s.tmp / "runner-clone";
  run({"git", "clone", "-q", s.upstream.string(), clone.string()});
  FakeDispatcher d;
  pid_t pid = start({(self_dir() / "simpleci-runner").string(), "--dispatcher", d.endpoint(), "--name", "soak",
                     "--log-dir", s.logs.string(), "--log-level", "warn", clone.string()},
                    s.tmp / "runner.out");
  bool ok = false;
  auto fail = [&](const std::string& why) {
    *err = why + " (see " + (s.tmp / "runner.out").string() + ")";
    return false;
  };
  auto body = [&]() -> bool {
    auto reg = d.next(milliseconds(10000));
    if (!reg || !std::holds_alternative<msg::Register>(*reg)) return fail("the runner did not register");
    d.send(msg::Welcome{1000});
    for (int i = 1; i <= count; ++i) {
      std::string commit = add_commit(s.repo, i);
      if (commit.empty()) return fail("cannot add a commit upstream");
      d.send(msg::Job{static_cast<uint64_t>(i), 1, commit, "main", "true", 60, 4096});
      auto deadline = Clock::now() + std::chrono::seconds(60);
      bool got = false;
      while (!got && Clock::now() < deadline) {
        auto m = d.next(milliseconds(200));
        d.send(msg::Heartbeat{});
        if (!m) continue;
        if (const auto* r = std::get_if<msg::Result>(&*m); r && r->job_id == static_cast<uint64_t>(i)) {
          if (r->status != msg::JobStatus::kPassed) return fail("job " + std::to_string(i) + " did not pass: " + r->output);
          d.send(msg::ResultAck{r->job_id, r->attempt});
          got = true;
        }
      }
      if (!got) return fail("no result for job " + std::to_string(i) + " within 60 s");
      out->sample(pid, i, count);
    }
    return true;
  };
  ok = body();
  stop(pid);
  return ok;
}

// Counts "polled origin" lines the observer has written since the last call.
class PollCounter {
 public:
  explicit PollCounter(fs::path log) : log_(std::move(log)) {}
  int polls() {
    std::ifstream in(log_, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(offset_));
    std::string chunk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    size_t end = chunk.rfind('\n');
    if (end == std::string::npos) return polls_;
    for (size_t at = 0; (at = chunk.find("polled origin", at)) != std::string::npos && at < end; ++at) ++polls_;
    offset_ += end + 1;
    return polls_;
  }

 private:
  fs::path log_;
  size_t offset_ = 0;
  int polls_ = 0;
};

// The real observer polling `count` times; a new commit upstream every 100 polls, every
// COMMIT answered ACCEPTED. RSS every 20 polls.
bool soak_observer(Setup& s, int count, int poll_ms, Series* out, std::string* err) {
  fs::path clone = s.tmp / "observer-clone";
  run({"git", "clone", "-q", s.upstream.string(), clone.string()});
  FakeDispatcher d;
  const fs::path log = s.tmp / "observer.out";
  pid_t pid = start({(self_dir() / "simpleci-observer").string(), "--dispatcher", d.endpoint(), "--poll-ms",
                     std::to_string(poll_ms), "--log-dir", s.logs.string(), "--log-level", "trace", clone.string()},
                    log);
  PollCounter counter(log);
  uint64_t job = 0;
  int polls = 0, last_sample = -1, commits = 0;
  // Generous: a poll is a fetch (a few ms) plus the interval; a loaded machine is slower.
  auto deadline = Clock::now() + milliseconds(static_cast<int64_t>(count) * (poll_ms + 50) + 30000);
  while (polls < count && Clock::now() < deadline) {
    if (auto m = d.next(milliseconds(20))) {
      if (const auto* c = std::get_if<msg::Commit>(&*m)) d.send(msg::Accepted{c->request_id, ++job, false});
    }
    polls = counter.polls();
    if (polls / 100 > commits) add_commit(s.repo, ++commits);
    if (polls / 20 != last_sample / 20) {
      out->sample(pid, polls, count);
      last_sample = polls;
    }
  }
  out->sample(pid, polls, count);
  stop(pid);
  if (polls < count) {
    *err = "the observer polled only " + std::to_string(polls) + " times before the deadline (see " + log.string() + ")";
    return false;
  }
  return true;
}

}  // namespace

int run_soak(const SoakOptions& o) {
  Setup s;
  s.tmp = make_temp_dir(o.work_dir);
  std::string err;
  git_libgit2_init();
  bool ok = !s.tmp.empty() && make_upstream(&s, &err);
  nlohmann::json j;
  std::printf("soak: %s, %d iterations each (observer polling every %d ms)\n", o.component.c_str(), o.count, o.poll_ms);
  if (ok && (o.component == "observer" || o.component == "both")) {
    Series obs;
    ok = soak_observer(s, o.count, o.poll_ms, &obs, &err);
    if (ok) obs.report("observer", "polls", &j);
  }
  if (ok && (o.component == "runner" || o.component == "both")) {
    Series run;
    ok = soak_runner(s, o.count, &run, &err);
    if (ok) run.report("runner", "jobs", &j);
  }
  std::error_code ec;
  if (!o.keep && ok) fs::remove_all(s.tmp, ec);
  if (!ok) {
    std::fprintf(stderr, "simpleci-bench: %s\n", err.empty() ? "cannot create a temporary folder" : err.c_str());
    return 1;
  }
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

}  // namespace simpleci::bench
