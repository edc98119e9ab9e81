#include "tools/client/watch.h"

#include <algorithm>
#include <cstdio>

#include "messages/validate.h"
#include "tools/client/session.h"

namespace simpleci::client {

namespace {

std::string job_line(uint64_t job, const std::string& what) {
  return std::string(kProgram) + ": job " + std::to_string(job) + " " + what;
}

std::string summary(uint64_t job, const msg::WatchReply& w) {
  char buf[512];
  std::snprintf(buf, sizeof buf, "%s (exit %d, %.1f s, runner %s, attempt %u)",
                std::string(msg::to_string(w.status)).c_str(), w.exit_code,
                static_cast<double>(w.duration_ms) / 1000.0, w.runner.empty() ? "-" : w.runner.c_str(), w.attempt);
  return job_line(job, buf);
}

}  // namespace

bool parse_watch_target(const std::string& target, uint64_t* job, std::string* commit) {
  const bool numeric = !target.empty() && target.size() <= 18 &&
                       target.find_first_not_of("0123456789") == std::string::npos;
  *job = numeric ? std::stoull(target) : 0;
  *commit = numeric ? "" : normalize_commit_id(target);
  return *job != 0 || !commit->empty();
}

msg::WatchRequest WatchView::next_request(uint64_t request_id) const {
  return msg::WatchRequest{request_id, job_, attempt_, offset_};
}

WatchView::Step WatchView::take(const msg::WatchReply& w) {
  Step s;
  if (w.attempt != attempt_) {  // (re)started: its output begins again at 0
    if (attempt_ != 0) s.notes.push_back(job_line(job_, "restarted"));
    attempt_ = w.attempt;
    offset_ = 0;
  }
  if (!w.runner.empty()) runner_ = w.runner;
  if (w.status != shown_ && !msg::is_final(w.status)) {
    s.notes.push_back(w.status == msg::JobStatus::kRunning
                          ? job_line(job_, "running on " + runner_ + " (attempt " + std::to_string(w.attempt) + ")")
                          : job_line(job_, "queued"));
    shown_ = w.status;
  }
  std::string_view data = w.data;
  if (w.offset > offset_) {
    s.notes.push_back(std::string(kProgram) + ": [" + std::to_string(w.offset - offset_) +
                      " bytes of output not kept]");
  } else {
    data.remove_prefix(std::min<uint64_t>(offset_ - w.offset, data.size()));
  }
  s.output = std::string(data);
  offset_ = std::max(offset_, w.offset + w.data.size());
  if (w.complete) {
    s.ended = true;
    s.summary = summary(job_, w);
    s.exit_code = w.status == msg::JobStatus::kPassed ? 0 : kJobNotPassed;
  }
  return s;
}

std::optional<WatchView::Step> WatchView::take_chunk(const msg::JobOutput& o, bool skip_gap) {
  if (o.attempt < attempt_) return Step{};
  if (!skip_gap && (o.attempt != attempt_ || o.offset > offset_)) return std::nullopt;
  msg::WatchReply w;
  w.job_id = job_;
  w.attempt = o.attempt;
  w.status = msg::JobStatus::kRunning;  // the job streams: it runs
  w.offset = o.offset;
  w.data = o.data;
  return take(w);
}

}  // namespace simpleci::client
