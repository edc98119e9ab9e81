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

}  // namespace
}  // namespace simpleci::client
