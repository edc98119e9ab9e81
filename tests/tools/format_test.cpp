#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tools/client/format.h"

namespace simpleci::client {
namespace {

msg::StatusReply sample() {
  msg::StatusReply s;
  s.runners.push_back({"r1", "busy", 2, {7}, 1000});
  s.queue_length = 3;
  msg::JobSummary j;
  j.job_id = 7;
  j.commit = std::string(40, 'a');
  j.branch = "main";
  j.status = msg::JobStatus::kRunning;
  j.runner = "r1";
  j.attempt = 2;
  s.running.push_back(j);
  s.counters.push_back({"rejected.malformed", 5});
  return s;
}

TEST(Format, StatusTextShowsRunnersQueueJobsAndCounters) {
  std::string t = status_text(sample(), 1500);
  EXPECT_NE(t.find("queued: 3"), std::string::npos) << t;
  EXPECT_NE(t.find("r1"), std::string::npos);
  EXPECT_NE(t.find("1/2"), std::string::npos);
  EXPECT_NE(t.find("500 ms ago"), std::string::npos);
  EXPECT_NE(t.find("rejected.malformed"), std::string::npos);
}

TEST(Format, StatusJsonIsParseable) {
  auto j = nlohmann::json::parse(status_json(sample()));
  EXPECT_EQ(j["queue_length"], 3);
  EXPECT_EQ(j["runners"][0]["name"], "r1");
  EXPECT_EQ(j["running"][0]["attempt"], 2);
  EXPECT_EQ(j["counters"]["rejected.malformed"], 5);
}

TEST(Format, ResultsInFullIncludeTheOutput) {
  msg::ResultsReply r;
  msg::JobSummary j;
  j.job_id = 3;
  j.commit = std::string(40, 'b');
  j.status = msg::JobStatus::kFailed;
  j.exit_code = 1;
  r.jobs.push_back(j);
  r.output = "boom";
  std::string t = results_text(r, true);
  EXPECT_NE(t.find("failed"), std::string::npos);
  EXPECT_NE(t.find("boom"), std::string::npos);
  EXPECT_EQ(results_text(msg::ResultsReply{}, false), "no jobs\n");
}

TEST(Format, EventLinesAreOneLineEach) {
  msg::Event e;
  e.seq = 12;
  e.kind = static_cast<uint32_t>(msg::EventKind::kJobFinished);
  e.at_ms = 1'796'230'862'345;  // 2026-12-02T17:01:02.345Z
  msg::JobSummary j = sample().running[0];
  j.commit = "abc1234" + std::string(33, '0');
  j.status = msg::JobStatus::kPassed;
  j.exit_code = 0;
  j.duration_ms = 1200;
  j.attempt = 1;
  e.jobs.push_back(j);
  e.queue_length = 2;
  EXPECT_EQ(event_line(e, false),
            "2026-12-02T17:01:02.345Z job_finished job 7 abc1234 main passed exit 0 1.2s runner r1 attempt 1 "
            "queue 2 seq 12\n");
  const auto json = nlohmann::json::parse(event_line(e, true));
  EXPECT_EQ(json["kind"], "job_finished");
  EXPECT_EQ(json["job"]["status"], "passed");
  EXPECT_FALSE(json.contains("runner"));

  msg::Event r;
  r.seq = 13;
  r.kind = static_cast<uint32_t>(msg::EventKind::kRunnerChanged);
  r.at_ms = e.at_ms;
  r.runners.push_back({"r1", "idle", 2, {}, e.at_ms});
  EXPECT_EQ(event_line(r, false), "2026-12-02T17:01:02.345Z runner_changed runner r1 idle jobs - capacity 2 queue 0 seq 13\n");
  EXPECT_EQ(nlohmann::json::parse(event_line(r, true))["runner"]["last_seen"], "2026-12-02T17:01:02.345Z");

  const msg::JobOutput o{5, 7, 1, 10, "a\"b\n"};
  EXPECT_EQ(output_line(o, e.at_ms, false), "2026-12-02T17:01:02.345Z output job 7 attempt 1 offset 10 \"a\\\"b\\n\"\n");
  EXPECT_EQ(nlohmann::json::parse(output_line(o, e.at_ms, true))["data"], "a\"b\n");
  EXPECT_EQ(interrupted_line("missed events 3..4", e.at_ms, false),
            "2026-12-02T17:01:02.345Z interrupted missed events 3..4\n");
  const auto snap = nlohmann::json::parse(snapshot_line(msg::Snapshot{1, 5, 11, {}, 0, {}, {j}}, e.at_ms, true));
  EXPECT_EQ(snap["kind"], "snapshot");
  EXPECT_EQ(snap["running"][0]["job_id"], 7);
}

}  // namespace
}  // namespace simpleci::client
