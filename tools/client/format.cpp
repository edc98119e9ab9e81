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
  for (const auto& r : s.runners) {
    j["runners"].push_back({{"name", r.name},
                            {"state", r.state},
                            {"capacity", r.capacity},
                            {"jobs", r.jobs},
                            {"last_seen", r.last_seen_ms ? iso8601_utc(r.last_seen_ms) : ""}});
  }
  j["running"] = nlohmann::json::array();
  for (const auto& r : s.running) j["running"].push_back(msg::summary_json(r));
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
  j["jobs"] = nlohmann::json::array();
  for (const auto& job : r.jobs) j["jobs"].push_back(msg::summary_json(job));
  if (!r.output.empty()) j["output"] = r.output;
  return dump(j);
}

}  // namespace simpleci::client
