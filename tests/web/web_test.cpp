// simpleci-web without sockets: the model built from a snapshot and events, the SSE frames and
// their replay, the Prometheus conversion, badges and the checks of what a request carries.
#include <gtest/gtest.h>

#include "web/metrics.h"
#include "web/model.h"
#include "web/query.h"
#include "web/static_files.h"

using namespace simpleci;
using namespace simpleci::web;

namespace {

msg::JobSummary job(uint64_t id, msg::JobStatus s, std::string branch = "main") {
  msg::JobSummary j;
  j.job_id = id;
  j.commit = std::string(40, 'a');
  j.branch = std::move(branch);
  j.status = s;
  return j;
}

msg::RunnerInfo runner(std::string name, std::string state) {
  msg::RunnerInfo r;
  r.name = std::move(name);
  r.state = std::move(state);
  return r;
}

msg::Event event(uint64_t seq, msg::EventKind k, std::optional<msg::JobSummary> j = {},
                 std::optional<msg::RunnerInfo> r = {}, uint64_t queue_length = 0) {
  msg::Event e;
  e.feed = 7;
  e.seq = seq;
  e.kind = static_cast<uint32_t>(k);
  e.at_ms = 1'767'225'600'000;
  if (j) e.jobs.push_back(*j);
  if (r) e.runners.push_back(*r);
  e.queue_length = queue_length;
  return e;
}

msg::Snapshot snapshot(uint64_t seq, uint64_t feed = 7) {
  msg::Snapshot s;
  s.feed = feed;
  s.seq = seq;
  s.runners = {runner("r1", "idle")};
  s.queue_length = 2;
  s.queued = {job(1, msg::JobStatus::kQueued), job(2, msg::JobStatus::kQueued)};
  return s;
}

std::vector<uint64_t> ids(const nlohmann::json& jobs) {
  std::vector<uint64_t> out;
  for (const auto& j : jobs) out.push_back(j["job_id"].get<uint64_t>());
  return out;
}

TEST(WebModel, BuildsStatusFromSnapshotAndEvents) {
  Model m;
  m.on_snapshot(snapshot(10));
  auto st = m.status();
  EXPECT_EQ(st["feed"], "live");
  EXPECT_EQ(st["seq"], 10u);
  EXPECT_EQ(st["feed_id"], 7u);
  EXPECT_EQ(st["event_id"], "7-10");
  EXPECT_EQ(st["queue_length"], 2u);
  EXPECT_EQ(ids(st["queued"]), (std::vector<uint64_t>{1, 2}));
  ASSERT_EQ(st["runners"].size(), 1u);
  EXPECT_EQ(st["runners"][0]["name"], "r1");

  auto started = job(1, msg::JobStatus::kRunning);
  started.runner = "r1";
  m.on_event(event(11, msg::EventKind::kJobStarted, started, runner("r1", "busy"), 1));
  m.on_event(event(12, msg::EventKind::kJobQueued, job(3, msg::JobStatus::kQueued), {}, 2));
  st = m.status();
  EXPECT_EQ(ids(st["queued"]), (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(ids(st["running"]), (std::vector<uint64_t>{1}));
  EXPECT_EQ(st["runners"][0]["state"], "busy");
  ASSERT_NE(m.running(1), nullptr);
  EXPECT_EQ(m.running(1)->runner, "r1");

  m.on_event(event(13, msg::EventKind::kJobFinished, job(1, msg::JobStatus::kPassed), {}, 2));
  m.on_event(event(14, msg::EventKind::kJobFinished, job(2, msg::JobStatus::kCancelled), {}, 1));
  m.on_event(event(15, msg::EventKind::kRunnerLeft, {}, runner("r1", "idle"), 1));
  st = m.status();
  EXPECT_EQ(m.running(1), nullptr);
  EXPECT_EQ(ids(st["recent"]), (std::vector<uint64_t>{2, 1}));  // newest first
  EXPECT_EQ(ids(st["queued"]), (std::vector<uint64_t>{3}));
  EXPECT_TRUE(st["runners"].empty());
  EXPECT_EQ(st["seq"], 15u);
  EXPECT_EQ(st["event_id"], "7-15");
  EXPECT_EQ(st["queue_length"], 1u);
}

TEST(WebModel, RequeuedJobGoesBackToTheHeadOfTheQueue) {
  Model m;
  m.on_snapshot(snapshot(0));
  m.on_event(event(1, msg::EventKind::kJobStarted, job(1, msg::JobStatus::kRunning), {}, 1));
  m.on_event(event(2, msg::EventKind::kJobRequeued, job(1, msg::JobStatus::kQueued), {}, 2));
  EXPECT_EQ(ids(m.status()["queued"]), (std::vector<uint64_t>{1, 2}));
  EXPECT_TRUE(m.status()["running"].empty());
}

TEST(WebModel, RecentJobsAreBounded) {
  Model m(kEventRing, 3);
  m.on_snapshot(snapshot(0));
  for (uint64_t i = 1; i <= 5; ++i) m.on_event(event(i, msg::EventKind::kJobFinished, job(i, msg::JobStatus::kFailed)));
  EXPECT_EQ(ids(m.status()["recent"]), (std::vector<uint64_t>{5, 4, 3}));
}

TEST(WebSse, FrameIsIdEventAndOneLineOfJson) {
  auto e = event(42, msg::EventKind::kJobFinished, job(9, msg::JobStatus::kPassed), {}, 3);
  e.jobs[0].branch = "feature/x";
  Model m;
  m.on_snapshot(snapshot(41));
  std::string f = m.on_event(e);
  ASSERT_TRUE(f.starts_with("id: 7-42\nevent: job_finished\ndata: {")) << f;
  ASSERT_TRUE(f.ends_with("}\n\n")) << f;
  std::string data = f.substr(f.find("data: ") + 6);
  data.resize(data.size() - 2);
  EXPECT_EQ(data.find('\n'), std::string::npos);
  auto j = nlohmann::json::parse(data);
  EXPECT_EQ(j["seq"], 42u);
  EXPECT_EQ(j["kind"], "job_finished");
  EXPECT_EQ(j["queue_length"], 3u);
  EXPECT_EQ(j["at"], "2026-01-01T00:00:00.000Z");
  EXPECT_EQ(j["job"]["job_id"], 9u);
  EXPECT_EQ(j["job"]["status"], "passed");
  EXPECT_EQ(j["job"]["branch"], "feature/x");
  EXPECT_TRUE(j["runner"].is_null());
}

TEST(WebSse, ReplaysFromTheRingOrAsksForResync) {
  Model m(4);
  EXPECT_FALSE(m.replay_after(0, 0));  // no snapshot yet
  m.on_snapshot(snapshot(10));
  EXPECT_EQ(m.replay_after(7, 10), "");
  EXPECT_FALSE(m.replay_after(7, 9));   // before the snapshot: not in the ring
  EXPECT_FALSE(m.replay_after(7, 11));  // from the future
  std::vector<std::string> frames;
  for (uint64_t s = 11; s <= 13; ++s) frames.push_back(m.on_event(event(s, msg::EventKind::kJobQueued, job(s, msg::JobStatus::kQueued))));
  EXPECT_EQ(m.replay_after(7, 11), frames[1] + frames[2]);
  EXPECT_EQ(m.replay_after(7, 10), frames[0] + frames[1] + frames[2]);
  // Two more: the ring of 4 forgets event 11.
  m.on_event(event(14, msg::EventKind::kKeepalive));
  m.on_event(event(15, msg::EventKind::kKeepalive));
  EXPECT_FALSE(m.replay_after(7, 10));
  EXPECT_TRUE(m.replay_after(7, 11));
  // A broken feed: nothing can be promised until the next snapshot.
  std::string r = m.on_interrupted("missed events 16..17");
  EXPECT_TRUE(r.starts_with("id: 7-15\nevent: resync\ndata: ")) << r;
  EXPECT_EQ(m.status()["feed"], "interrupted");
  EXPECT_FALSE(m.replay_after(7, 15));
  // Back with events missed: the ring starts over at the snapshot.
  m.on_snapshot(snapshot(17));
  EXPECT_FALSE(m.replay_after(7, 15));
  EXPECT_EQ(m.replay_after(7, 17), "");
}

TEST(WebSse, ResnapshotWithoutAGapKeepsTheRing) {
  Model m;
  m.on_snapshot(snapshot(0));
  std::string f = m.on_event(event(1, msg::EventKind::kJobQueued, job(1, msg::JobStatus::kQueued)));
  m.on_snapshot(snapshot(1));
  EXPECT_EQ(m.replay_after(7, 0), f);
}

// The dispatcher restarts while a page is away: its new feed counts seq from 0 again and soon
// passes the page's last seq. The page's id names the old feed, so it must resync; replaying
// the new feed's events after the same number would skip the state change between the feeds.
TEST(WebSse, AnIdFromTheFeedBeforeARestartResyncsEvenWhenItsSeqIsInTheRing) {
  const uint64_t a = 7, b = 8'000'000'001;
  Model m;
  m.on_snapshot(snapshot(0, a));
  for (uint64_t s = 1; s <= 10; ++s) m.on_event(event(s, msg::EventKind::kKeepalive));
  std::string r = m.on_snapshot(snapshot(0, b));
  EXPECT_TRUE(r.starts_with("id: 8000000001-0\nevent: resync\n")) << r;
  std::vector<std::string> frames;
  for (uint64_t s = 1; s <= 50; ++s) {
    auto e = event(s, msg::EventKind::kJobQueued, job(s, msg::JobStatus::kQueued));
    e.feed = b;
    frames.push_back(m.on_event(e));
  }
  EXPECT_TRUE(frames[42].starts_with("id: 8000000001-43\n")) << frames[42];
  EXPECT_EQ(m.status()["event_id"], "8000000001-50");

  auto from_a = parse_event_id("7-42");
  ASSERT_TRUE(from_a);
  EXPECT_FALSE(m.replay_after(from_a->feed, from_a->seq));  // resync
  auto from_b = parse_event_id("8000000001-42");
  ASSERT_TRUE(from_b);
  std::string want;
  for (size_t i = 42; i < 50; ++i) want += frames[i];  // events 43..50
  EXPECT_EQ(m.replay_after(from_b->feed, from_b->seq), want);
}

TEST(WebSse, EventIdsAreFeedDashSeqAndNothingElse) {
  EXPECT_EQ(event_id_text({7, 42}), "7-42");
  auto id = parse_event_id("7-42");
  ASSERT_TRUE(id);
  EXPECT_EQ(id->feed, 7u);
  EXPECT_EQ(id->seq, 42u);
  id = parse_event_id("18446744073709551615-18446744073709551615");  // 2^64 - 1 twice
  ASSERT_TRUE(id);
  EXPECT_EQ(id->feed, UINT64_MAX);
  EXPECT_EQ(id->seq, UINT64_MAX);
  EXPECT_TRUE(parse_event_id("0-0"));  // a status before the first snapshot says so
  for (std::string_view bad : {"", "42", "-", "7-", "-42", "7--42", "7-4-2", "+7-42", "7-+42", " 7-42", "7-42 ",
                               "7 -42", "0x7-42", "7-42a", "a-42", "7.0-42", "18446744073709551616-1",
                               "1-18446744073709551616", "1-000000000000000000001"}) {
    EXPECT_FALSE(parse_event_id(bad)) << "'" << bad << "'";
  }
}

TEST(WebMetrics, ConvertsNamesToPrometheusConventions) {
  std::vector<msg::Counter> in = {
      {"jobs.passed", 5},          {"jobs.failed", 2},         {"jobs.requeued", 1},
      {"rejected.malformed", 3},   {"results.stale", 4},       {"output.bytes", 1000},
      {"gauge.queue_length", 7},   {"gauge.running", 2},       {"gauge.runners.idle", 1},
      {"gauge.runners.busy", 2},   {"gauge.start_time_ms", 1'767'225'600'500},
      {"hist.job_duration_ms.le.10", 1}, {"hist.job_duration_ms.le.2500", 3},
      {"hist.job_duration_ms.count", 4}, {"hist.job_duration_ms.sum_ms", 12345},
  };
  std::string t = prometheus_text(in, "0.1.0");
  auto has = [&](const std::string& line) { return t.find(line + "\n") != std::string::npos; };
  EXPECT_TRUE(has("# TYPE simpleci_jobs_finished_total counter")) << t;
  EXPECT_TRUE(has("simpleci_jobs_finished_total{status=\"passed\"} 5")) << t;
  EXPECT_TRUE(has("simpleci_jobs_finished_total{status=\"failed\"} 2")) << t;
  EXPECT_TRUE(has("simpleci_jobs_requeued_total 1")) << t;
  EXPECT_TRUE(has("simpleci_rejected_messages_total{reason=\"malformed\"} 3")) << t;
  EXPECT_TRUE(has("simpleci_stale_results_total 4")) << t;
  EXPECT_TRUE(has("simpleci_output_bytes_total 1000")) << t;
  EXPECT_TRUE(has("# TYPE simpleci_queue_length gauge")) << t;
  EXPECT_TRUE(has("simpleci_queue_length 7")) << t;
  EXPECT_TRUE(has("simpleci_jobs_running 2")) << t;
  EXPECT_TRUE(has("simpleci_runners{state=\"busy\"} 2")) << t;
  EXPECT_TRUE(has("simpleci_start_time_seconds 1767225600.5")) << t;
  EXPECT_TRUE(has("# TYPE simpleci_job_duration_seconds histogram")) << t;
  EXPECT_TRUE(has("simpleci_job_duration_seconds_bucket{le=\"0.01\"} 1")) << t;
  EXPECT_TRUE(has("simpleci_job_duration_seconds_bucket{le=\"2.5\"} 3")) << t;
  EXPECT_TRUE(has("simpleci_job_duration_seconds_bucket{le=\"+Inf\"} 4")) << t;
  EXPECT_TRUE(has("simpleci_job_duration_seconds_sum 12.345")) << t;
  EXPECT_TRUE(has("simpleci_job_duration_seconds_count 4")) << t;
  EXPECT_TRUE(has("simpleci_build_info{version=\"0.1.0\",protocol=\"2\"} 1")) << t;
  // One HELP and one TYPE per family, before its samples.
  EXPECT_EQ(t.find("# HELP simpleci_jobs_finished_total"), t.rfind("# HELP simpleci_jobs_finished_total"));
  EXPECT_LT(t.find("# TYPE simpleci_runners gauge"), t.find("simpleci_runners{"));
}

TEST(WebMetrics, SecondsText) {
  EXPECT_EQ(seconds_text(0), "0");
  EXPECT_EQ(seconds_text(10), "0.01");
  EXPECT_EQ(seconds_text(250), "0.25");
  EXPECT_EQ(seconds_text(3'600'000), "3600");
  EXPECT_EQ(seconds_text(1001), "1.001");
}

TEST(WebBadge, StatusWordAndColour) {
  std::string b = badge_svg("main", "passed");
  EXPECT_NE(b.find(">passed</text>"), std::string::npos);
  EXPECT_NE(b.find("#2da44e"), std::string::npos);
  EXPECT_NE(badge_svg("main", "failed").find("#cf222e"), std::string::npos);
  std::string none = badge_svg("dev", "none");
  EXPECT_NE(none.find(">none</text>"), std::string::npos);
  EXPECT_NE(none.find("#8c959f"), std::string::npos);
  EXPECT_NE(badge_svg("a<b", "none").find("a&lt;b"), std::string::npos);
}

TEST(WebQuery, JobsRequestValidatesEveryValue) {
  std::string err;
  auto r = jobs_request({{"branch", "main"}, {"status", "passed,failed"}, {"limit", "5"}, {"before", "100"}}, &err);
  ASSERT_TRUE(r) << err;
  EXPECT_EQ(r->branch, "main");
  EXPECT_EQ(r->statuses, (1u << 2) | (1u << 3));
  EXPECT_EQ(r->limit, 5u);
  EXPECT_EQ(r->before_job_id, 100u);
  EXPECT_EQ(jobs_request({}, &err)->limit, 20u);

  EXPECT_FALSE(jobs_request({{"status", "passed,green"}}, &err));
  EXPECT_EQ(err, "status: 'green' is not one of queued, running, passed, failed, timeout, cancelled, error");
  EXPECT_FALSE(jobs_request({{"limit", "0"}}, &err));
  EXPECT_EQ(err, "limit must be a number 1..1000, got '0'");
  EXPECT_FALSE(jobs_request({{"limit", "1001"}}, &err));
  EXPECT_FALSE(jobs_request({{"limit", "5x"}}, &err));
  EXPECT_FALSE(jobs_request({{"before", "-1"}}, &err));
  EXPECT_EQ(err, "before must be a job id, got '-1'");
  EXPECT_FALSE(jobs_request({{"branch", "a..b"}}, &err));
  EXPECT_EQ(err, "branch: 'a..b' is not a valid branch name");
  EXPECT_FALSE(jobs_request({{"colour", "red"}}, &err));
  EXPECT_EQ(err, "unknown parameter 'colour' (branch, status, limit, before)");
}

TEST(WebQuery, JobIdsAndOffsets) {
  EXPECT_EQ(parse_job_id("17"), 17u);
  EXPECT_FALSE(parse_job_id("0"));
  EXPECT_FALSE(parse_job_id(""));
  EXPECT_FALSE(parse_job_id("+1"));
  EXPECT_FALSE(parse_job_id(" 1"));
  EXPECT_FALSE(parse_job_id("99999999999999999999999"));
  EXPECT_EQ(parse_offset("0"), 0u);
  EXPECT_FALSE(parse_offset("1125899906842625"));  // 2^50 + 1
}

TEST(WebQuery, TargetDecodesPathAndQuery) {
  std::string err;
  auto t = parse_target("/badge/feature%2Fx.svg?a=1&b=two+words&c=%41&&d", &err);
  ASSERT_TRUE(t) << err;
  EXPECT_EQ(t->path, "/badge/feature/x.svg");
  EXPECT_EQ(t->query.at("a"), "1");
  EXPECT_EQ(t->query.at("b"), "two words");
  EXPECT_EQ(t->query.at("c"), "A");
  EXPECT_EQ(t->query.at("d"), "");
  EXPECT_FALSE(parse_target("/x?a=%4", &err));
  EXPECT_FALSE(parse_target("/x%zz", &err));
  EXPECT_FALSE(parse_target("http://host/", &err));
}

TEST(WebQuery, ListenAddress) {
  std::string err;
  auto a = parse_listen("127.0.0.1:8080", &err);
  ASSERT_TRUE(a) << err;
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 8080);
  a = parse_listen("[::1]:0", &err);
  ASSERT_TRUE(a) << err;
  EXPECT_EQ(a->host, "::1");
  EXPECT_EQ(a->port, 0);
  EXPECT_EQ(parse_listen("localhost:1", &err)->host, "127.0.0.1");
  EXPECT_EQ(parse_listen("0.0.0.0:80", &err)->host, "0.0.0.0");
  EXPECT_FALSE(parse_listen("127.0.0.1", &err));
  EXPECT_FALSE(parse_listen("127.0.0.1:65536", &err));
  EXPECT_EQ(err, "port must be a number 0..65535, got '65536'");
  EXPECT_FALSE(parse_listen("::1:80", &err));
  EXPECT_FALSE(parse_listen("[127.0.0.1]:80", &err));
  EXPECT_FALSE(parse_listen("example.com:80", &err));
  EXPECT_EQ(err, "'example.com' is not an IPv4 address, [IPv6] address or localhost");
  EXPECT_FALSE(parse_listen("[::1:80", &err));
}

TEST(WebStatic, ContentTypesAndLookup) {
  EXPECT_EQ(content_type("index.html"), "text/html; charset=utf-8");
  EXPECT_EQ(content_type("js/app.js"), "text/javascript; charset=utf-8");
  EXPECT_EQ(content_type("style.css"), "text/css; charset=utf-8");
  EXPECT_EQ(content_type("blob"), "application/octet-stream");
  EXPECT_EQ(find_static("no/such/file"), nullptr);
  for (const StaticFile* f = static_files(); !f->path.empty(); ++f) {
    EXPECT_EQ(find_static(f->path), f);
    EXPECT_EQ(f->etag.size(), 18u);  // 16 hex digits in quotes
  }
}

}  // namespace
