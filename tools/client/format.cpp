#include "tools/client/format.h"

#include <cstdio>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "messages/summary_json.h"

namespace simpleci::client {

namespace {

std::string line(const char* fmt, auto... args) {
  char buf[512];
  std::snprintf(buf, sizeof buf, fmt, args...);
  return buf;
}

std::string ids(const std::vector<uint64_t>& v) {
  std::string s;
  for (uint64_t id : v) s += (s.empty() ? "" : ",") + std::to_string(id);
  return s.empty() ? "-" : s;
}

std::string dump(const nlohmann::json& j) {
  return msg::json_text(j, 2) + "\n";
}

std::string when(int64_t wall_ms) { return wall_ms ? iso8601_utc(wall_ms) : ""; }

nlohmann::json runner_json(const msg::RunnerInfo& r) {
  return {{"name", r.name},
          {"state", r.state},
          {"capacity", r.capacity},
          {"jobs", r.jobs},
          {"last_seen", when(r.last_seen_ms)}};
}

nlohmann::json jobs_json(const std::vector<msg::JobSummary>& jobs) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& j : jobs) a.push_back(msg::summary_json(j));
  return a;
}

std::string or_dash(const std::string& s) { return s.empty() ? "-" : s; }

// One line of `simpleci events`: the JSON object, or the words after the time and kind.
std::string event_out(bool json, const nlohmann::json& j, int64_t at_ms, std::string_view kind,
                      const std::string& words) {
  if (json) return msg::json_text(j) + "\n";
  return iso8601_utc(at_ms) + " " + std::string(kind) + (words.empty() ? "" : " " + words) + "\n";
}

}  // namespace

std::string status_text(const msg::StatusReply& s, int64_t now_ms) {
  std::string out = line("runners: %zu   queued: %llu   running: %zu\n", s.runners.size(),
                         static_cast<unsigned long long>(s.queue_length), s.running.size());
  if (!s.runners.empty()) {
    out += line("\n  %-24s %-9s %-8s %-16s %s\n", "RUNNER", "STATE", "SLOTS", "JOBS", "LAST SEEN");
    for (const auto& r : s.runners) {
      std::string slots = std::to_string(r.jobs.size()) + "/" + std::to_string(r.capacity);
      std::string seen = r.last_seen_ms ? std::to_string(std::max<int64_t>(0, now_ms - r.last_seen_ms)) + " ms ago" : "-";
      out += line("  %-24s %-9s %-8s %-16s %s\n", r.name.c_str(), r.state.c_str(), slots.c_str(),
                  ids(r.jobs).c_str(), seen.c_str());
    }
  }
  if (!s.running.empty()) {
    out += line("\n  %-8s %-12s %-16s %-20s %s\n", "JOB", "COMMIT", "BRANCH", "RUNNER", "ATTEMPT");
    for (const auto& j : s.running) {
      out += line("  %-8llu %-12.12s %-16s %-20s %u\n", static_cast<unsigned long long>(j.job_id),
                  j.commit.c_str(), j.branch.c_str(), j.runner.c_str(), j.attempt);
    }
  }
  if (!s.queued.empty()) {
    out += line("\n  %-8s %-12s %-24s %-16s %s\n", "QUEUED", "COMMIT", "REPO/JOB", "BRANCH", "WAITING");
    for (const auto& j : s.queued) {
      std::string name = j.repo.empty() ? j.job_name : j.repo + (j.job_name.empty() ? "" : "/" + j.job_name);
      out += line("  %-8llu %-12.12s %-24s %-16s %s\n", static_cast<unsigned long long>(j.job_id), j.commit.c_str(),
                  name.empty() ? "-" : name.c_str(), j.branch.c_str(), j.waiting.empty() ? "-" : j.waiting.c_str());
    }
    if (s.queued.size() < s.queue_length) {
      out += line("  (%llu more)\n", static_cast<unsigned long long>(s.queue_length - s.queued.size()));
    }
  }
  if (!s.counters.empty()) {
    out += "\ncounters:\n";
    for (const auto& c : s.counters) {
      out += line("  %-28s %llu\n", c.name.c_str(), static_cast<unsigned long long>(c.value));
    }
  }
  return out;
}

std::string status_json(const msg::StatusReply& s) {
  nlohmann::json j;
  j["queue_length"] = s.queue_length;
  j["runners"] = nlohmann::json::array();
  for (const auto& r : s.runners) j["runners"].push_back(runner_json(r));
  j["running"] = jobs_json(s.running);
  j["queued"] = jobs_json(s.queued);
  j["counters"] = nlohmann::json::object();
  for (const auto& c : s.counters) j["counters"][c.name] = c.value;
  return dump(j);
}

std::string results_text(const msg::ResultsReply& r, bool full) {
  if (r.jobs.empty()) return "no jobs\n";
  std::string out;
  if (full) {
    const auto& j = r.jobs[0];
    out += line("job %llu  %s  %s\n", static_cast<unsigned long long>(j.job_id), j.commit.c_str(),
                std::string(msg::to_string(j.status)).c_str());
    out += line("  branch %s, runner %s, attempt %u, exit %d, %lld ms%s\n",
                j.branch.empty() ? "-" : j.branch.c_str(), j.runner.empty() ? "-" : j.runner.c_str(),
                j.attempt, j.exit_code, static_cast<long long>(j.duration_ms),
                j.truncated ? ", output truncated" : "");
    if (j.started_at_ms) out += "  started " + iso8601_utc(j.started_at_ms) + "\n";
    if (j.finished_at_ms) out += "  finished " + iso8601_utc(j.finished_at_ms) + "\n";
    if (!r.output.empty()) out += "\n" + r.output + (r.output.back() == '\n' ? "" : "\n");
    if (r.jobs.size() > 1) out += line("\n(%zu earlier runs of this commit)\n", r.jobs.size() - 1);
    return out;
  }
  out += line("%-8s %-12s %-10s %-16s %-20s %-7s %s\n", "JOB", "COMMIT", "STATUS", "BRANCH",
              "RUNNER", "ATTEMPT", "DURATION");
  for (const auto& j : r.jobs) {
    out += line("%-8llu %-12.12s %-10s %-16s %-20s %-7u %lld ms\n",
                static_cast<unsigned long long>(j.job_id), j.commit.c_str(),
                std::string(msg::to_string(j.status)).c_str(), j.branch.c_str(),
                j.runner.empty() ? "-" : j.runner.c_str(), j.attempt,
                static_cast<long long>(j.duration_ms));
  }
  return out;
}

std::string results_json(const msg::ResultsReply& r) {
  nlohmann::json j;
  j["jobs"] = jobs_json(r.jobs);
  if (!r.output.empty()) j["output"] = r.output;
  return dump(j);
}

std::string event_line(const msg::Event& e, bool json) {
  const std::string_view kind = msg::to_string(static_cast<msg::EventKind>(e.kind));
  nlohmann::json j{{"seq", e.seq}, {"kind", kind}, {"at", iso8601_utc(e.at_ms)}, {"queue_length", e.queue_length}};
  std::string words;
  if (!e.jobs.empty()) {
    const auto& b = e.jobs[0];
    j["job"] = msg::summary_json(b);
    words = line("job %llu %.7s %s %s exit %d %.1fs runner %s attempt %u", static_cast<unsigned long long>(b.job_id),
                 b.commit.c_str(), or_dash(b.branch).c_str(), std::string(msg::to_string(b.status)).c_str(),
                 b.exit_code, static_cast<double>(b.duration_ms) / 1000.0, or_dash(b.runner).c_str(), b.attempt);
  }
  if (!e.runners.empty()) {
    const auto& r = e.runners[0];
    j["runner"] = runner_json(r);
    // A job_started names its runner already: only runner events spell one out.
    if (words.empty()) {
      words = line("runner %s %s jobs %s capacity %u", r.name.c_str(), r.state.c_str(), ids(r.jobs).c_str(),
                   r.capacity);
    }
  }
  words += (words.empty() ? "" : " ") + std::string("queue ") + std::to_string(e.queue_length) + " seq " +
           std::to_string(e.seq);
  return event_out(json, j, e.at_ms, kind, words);
}

std::string snapshot_line(const msg::Snapshot& s, int64_t at_ms, bool json) {
  nlohmann::json j{{"kind", "snapshot"}, {"at", iso8601_utc(at_ms)}, {"feed", s.feed}, {"seq", s.seq},
                   {"queue_length", s.queue_length}};
  j["runners"] = nlohmann::json::array();
  for (const auto& r : s.runners) j["runners"].push_back(runner_json(r));
  j["queued"] = jobs_json(s.queued);
  j["running"] = jobs_json(s.running);
  std::string running;
  for (const auto& r : s.running) running += (running.empty() ? "" : ",") + std::to_string(r.job_id);
  return event_out(json, j, at_ms, "snapshot",
                   line("runners %zu queue %llu running %s seq %llu", s.runners.size(),
                        static_cast<unsigned long long>(s.queue_length), or_dash(running).c_str(),
                        static_cast<unsigned long long>(s.seq)));
}

std::string output_line(const msg::JobOutput& o, int64_t at_ms, bool json) {
  const nlohmann::json data = o.data;
  nlohmann::json j{{"kind", "output"}, {"at", iso8601_utc(at_ms)}, {"job_id", o.job_id}, {"attempt", o.attempt},
                   {"offset", o.offset}, {"data", data}};
  return event_out(json, j, at_ms, "output",
                   line("job %llu attempt %u offset %llu ", static_cast<unsigned long long>(o.job_id), o.attempt,
                        static_cast<unsigned long long>(o.offset)) +
                       msg::json_text(data));
}

std::string interrupted_line(std::string_view why, int64_t at_ms, bool json) {
  nlohmann::json j{{"kind", "interrupted"}, {"at", iso8601_utc(at_ms)}, {"reason", why}};
  return event_out(json, j, at_ms, "interrupted", std::string(why));
}

}  // namespace simpleci::client
