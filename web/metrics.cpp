#include "web/metrics.h"

#include <charconv>
#include <map>

namespace simpleci::web {

namespace {

struct Sample {
  std::string labels;  // `{a="b"}` or ""
  std::string value;
};

struct Family {
  std::string type, help;
  std::vector<Sample> samples;
};

using Families = std::map<std::string, Family>;

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

std::string label_value(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

std::string label(std::string_view name, std::string_view value) {
  return "{" + std::string(name) + "=\"" + label_value(value) + "\"}";
}

// Keeps [a-zA-Z0-9_]; anything else becomes '_'.
std::string metric_name(std::string_view s) {
  std::string out;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    out += ok ? c : '_';
  }
  return out;
}

void add(Families& f, const std::string& name, const char* type, const std::string& help,
         std::string labels, std::string value) {
  Family& fam = f[name];
  fam.type = type;
  fam.help = help;
  fam.samples.push_back({std::move(labels), std::move(value)});
}

bool is_final_status(std::string_view word) {
  auto s = msg::job_status_from_string(word);
  return s && msg::is_final(*s);
}

// A histogram in seconds from hist.<src>.le.<ms>, .count and .sum_ms.
struct Hist {
  std::map<uint64_t, uint64_t> le;  // bound in ms → cumulative count
  uint64_t count = 0, sum_ms = 0;
};

void add_histogram(Families& f, const std::string& name, const std::string& help, const Hist& h) {
  Family& fam = f[name];
  fam.type = "histogram";
  fam.help = help;
  for (const auto& [ms, n] : h.le) {
    fam.samples.push_back({"_bucket" + label("le", seconds_text(ms)), std::to_string(n)});
  }
  fam.samples.push_back({"_bucket" + label("le", "+Inf"), std::to_string(h.count)});
  fam.samples.push_back({"_sum", seconds_text(h.sum_ms)});
  fam.samples.push_back({"_count", std::to_string(h.count)});
}

// One [name, value] pair into its family (histogram parts into hists).
void place(Families& f, std::map<std::string, Hist>& hists, const msg::Counter& c) {
  const std::string& n = c.name;
  std::string v = std::to_string(c.value);
  if (starts_with(n, "hist.")) {
    std::string_view rest = std::string_view(n).substr(5);
    auto dot = rest.find('.');
    if (dot == std::string_view::npos) return;
    Hist& h = hists[std::string(rest.substr(0, dot))];
    std::string_view part = rest.substr(dot + 1);
    uint64_t ms = 0;
    if (part == "count") {
      h.count = c.value;
    } else if (part == "sum_ms") {
      h.sum_ms = c.value;
    } else if (starts_with(part, "le.") &&
               std::from_chars(part.data() + 3, part.data() + part.size(), ms).ec == std::errc()) {
      h.le[ms] = c.value;
    }
  } else if (n == "gauge.queue_length") {
    add(f, "simpleci_queue_length", "gauge", "Jobs waiting in the queue.", "", v);
  } else if (n == "gauge.running") {
    add(f, "simpleci_jobs_running", "gauge", "Jobs running on runners.", "", v);
  } else if (starts_with(n, "gauge.runners.")) {
    add(f, "simpleci_runners", "gauge", "Registered runners by state.", label("state", n.substr(14)), v);
  } else if (n == "gauge.start_time_ms") {
    add(f, "simpleci_start_time_seconds", "gauge", "When the dispatcher started (Unix time).", "",
        seconds_text(c.value));
  } else if (starts_with(n, "gauge.")) {
    add(f, "simpleci_" + metric_name(n.substr(6)), "gauge", "Dispatcher gauge " + n + ".", "", v);
  } else if (starts_with(n, "jobs.") && is_final_status(n.substr(5))) {
    add(f, "simpleci_jobs_finished_total", "counter", "Jobs finished, by final status.",
        label("status", n.substr(5)), v);
  } else if (starts_with(n, "rejected.")) {
    add(f, "simpleci_rejected_messages_total", "counter", "Messages the dispatcher refused, by reason.",
        label("reason", n.substr(9)), v);
  } else if (n == "results.stale") {
    add(f, "simpleci_stale_results_total", "counter", "Results of an attempt that was not current.", "", v);
  } else if (n == "jobs.requeued") {
    add(f, "simpleci_jobs_requeued_total", "counter", "Jobs put back in the queue after their runner was lost.", "", v);
  } else {
    add(f, "simpleci_" + metric_name(n) + "_total", "counter", "Dispatcher counter " + n + ".", "", v);
  }
}

}  // namespace

std::string seconds_text(uint64_t ms) {
  std::string out = std::to_string(ms / 1000);
  uint64_t frac = ms % 1000;
  if (frac) {
    std::string digits = std::to_string(frac + 1000).substr(1);  // three digits
    while (digits.back() == '0') digits.pop_back();
    out += "." + digits;
  }
  return out;
}

std::string prometheus_text(const std::vector<msg::Counter>& metrics, std::string_view version) {
  Families f;
  std::map<std::string, Hist> hists;
  for (const auto& c : metrics) place(f, hists, c);
  for (const auto& [src, h] : hists) {
    std::string base = src;
    if (base.size() > 3 && base.ends_with("_ms")) base.resize(base.size() - 3);
    std::string help = src == "job_duration_ms"  ? "Job run time, started to finished, in seconds."
                       : src == "queue_wait_ms" ? "Time jobs waited in the queue before they started, in seconds."
                                                : "Dispatcher histogram " + src + ", in seconds.";
    add_histogram(f, "simpleci_" + metric_name(base) + "_seconds", help, h);
  }
  add(f, "simpleci_build_info", "gauge", "The version of simpleci-web and the wire protocol it speaks.",
      "{version=\"" + label_value(version) + "\",protocol=\"" + std::to_string(msg::kProtocolVersion) + "\"}",
      "1");
  std::string out;
  for (const auto& [name, fam] : f) {
    out += "# HELP " + name + " " + fam.help + "\n# TYPE " + name + " " + fam.type + "\n";
    for (const auto& s : fam.samples) {
      out += name + s.labels + " " + s.value + "\n";  // a histogram's labels start with its suffix
    }
  }
  return out;
}

}  // namespace simpleci::web
