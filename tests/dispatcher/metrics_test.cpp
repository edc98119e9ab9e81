// METRICS_REQUEST (the dispatcher's counters, gauges and histograms) and JOBS_REQUEST (jobs by
// branch and status, newest first, paged by id).
#include <map>

#include <msgpack.hpp>

#include "tests/dispatcher/fixture.h"

namespace simpleci::dispatcher {
namespace {

using MetricsTest = DispatcherTest;

std::map<std::string, uint64_t> metrics_of(const msg::MetricsReply& r) {
  std::map<std::string, uint64_t> m;
  for (const auto& c : r.metrics) m[c.name] = c.value;
  return m;
}

TEST(HistogramTest, CountsAreCumulativeAndAValuePastEveryBoundCountsOnlyInTotal) {
  Histogram h;
  h.observe(5);        // <= 10
  h.observe(10);       // <= 10 (bounds are inclusive)
  h.observe(11);       // <= 50
  h.observe(-3);       // a clock step: 0
  h.observe(7200000);  // past the largest bound
  std::vector<msg::Counter> out;
  h.append_to("d", &out);
  std::map<std::string, uint64_t> m;
  for (const auto& c : out) m[c.name] = c.value;
  EXPECT_EQ(m["hist.d.le.10"], 3u);
  EXPECT_EQ(m["hist.d.le.50"], 4u);
  EXPECT_EQ(m["hist.d.le.3600000"], 4u);
  EXPECT_EQ(m["hist.d.count"], 5u);
  EXPECT_EQ(m["hist.d.sum_ms"], 5u + 10 + 11 + 0 + 7200000);
  EXPECT_EQ(out.size(), Histogram::kBoundsMs.size() + 2);
}

TEST_F(MetricsTest, AFinishedJobShowsInCountersGaugesAndBothHistograms) {
  submit("c", 1);
  submit("c", 2);
  advance(300);  // both wait 300 ms for a runner
  add_runner("r1");
  auto jobs = out_.take<msg::Job>("r1");
  ASSERT_EQ(jobs.size(), 1u);
  pass_time(1500, {"r1"});
  msg::Result res = result_for(jobs[0]);
  res.started_at_ms = clock_.wall_ms() - 1500;
  deliver("r1", res);

  deliver("c", msg::MetricsRequest{9});
  auto rep = out_.take<msg::MetricsReply>("c");
  ASSERT_EQ(rep.size(), 1u);
  EXPECT_EQ(rep[0].request_id, 9u);
  auto m = metrics_of(rep[0]);
  EXPECT_EQ(m["jobs.passed"], 1u);
  EXPECT_EQ(m["hist.job_duration_ms.count"], 1u);
  EXPECT_EQ(m["hist.job_duration_ms.sum_ms"], 1500u);
  EXPECT_EQ(m["hist.job_duration_ms.le.1000"], 0u);
  EXPECT_EQ(m["hist.job_duration_ms.le.2500"], 1u);
  // Job 2 started when job 1 ended (1.8 s after it was queued); job 1 after 300 ms.
  EXPECT_EQ(m["hist.queue_wait_ms.count"], 2u);
  EXPECT_EQ(m["hist.queue_wait_ms.le.250"], 0u);
  EXPECT_EQ(m["hist.queue_wait_ms.le.500"], 1u);
  EXPECT_EQ(m["hist.queue_wait_ms.le.2500"], 2u);
  EXPECT_EQ(m["gauge.running"], 1u);
  EXPECT_EQ(m["gauge.queue_length"], 0u);
  EXPECT_EQ(m["gauge.runners.busy"], 1u);
  EXPECT_EQ(m["gauge.runners.idle"], 0u);
  EXPECT_EQ(m.count("gauge.runners.paused"), 1u) << "every state is listed, 0 or not";
  EXPECT_GT(m["gauge.start_time_ms"], 0u);
}

TEST_F(MetricsTest, ACancelledQueuedJobIsNoDurationAndARequeuedStartNoSecondWait) {
  add_runner("r1");
  const uint64_t a = submit("c", 1);
  const uint64_t b = submit("c", 2);
  ASSERT_EQ(out_.take<msg::Job>("r1").size(), 1u);
  deliver("c", msg::CancelRequest{3, b});
  pass_time(400, {});  // r1 is lost: job a goes back to the queue
  add_runner("r2");
  ASSERT_EQ(out_.take<msg::Job>("r2").at(0).job_id, a);
  deliver("c", msg::MetricsRequest{4});
  auto m = metrics_of(out_.take<msg::MetricsReply>("c").at(0));
  EXPECT_EQ(m["jobs.cancelled"], 1u);
  EXPECT_EQ(m["hist.job_duration_ms.count"], 0u);
  EXPECT_EQ(m["hist.queue_wait_ms.count"], 1u);
  EXPECT_EQ(m["jobs.requeued"], 1u);
}

class JobsRequestTest : public DispatcherTest {
 protected:
  // Jobs 1..6: odd ones on "main", even ones on "dev"; 1, 2, 3 passed, 4 failed, 5 and 6 queued.
  void SetUp() override {
    DispatcherTest::SetUp();
    add_runner("r1");
    for (int n = 1; n <= 6; ++n) {
      deliver("c", msg::Commit{static_cast<uint64_t>(n), commit_id(n), n % 2 ? "main" : "dev", false});
      ASSERT_EQ(out_.take<msg::Accepted>("c").size(), 1u);
    }
    for (int n = 1; n <= 4; ++n) {
      auto j = out_.take<msg::Job>("r1");
      ASSERT_EQ(j.size(), 1u);
      if (n == 4) deliver("r1", msg::Drain{});  // so 5 and 6 stay queued
      deliver("r1", result_for(j[0], n == 4 ? msg::JobStatus::kFailed : msg::JobStatus::kPassed));
    }
  }
  std::vector<uint64_t> ids(std::string branch, uint32_t statuses, uint32_t limit, uint64_t before = 0) {
    deliver("c", msg::JobsRequest{77, std::move(branch), statuses, limit, before});
    auto rep = out_.take<msg::ResultsReply>("c");
    EXPECT_EQ(rep.size(), 1u);
    std::vector<uint64_t> out;
    if (!rep.empty()) {
      EXPECT_EQ(rep[0].request_id, 77u);
      EXPECT_TRUE(rep[0].output.empty());
      for (const auto& j : rep[0].jobs) out.push_back(j.job_id);
    }
    return out;
  }
  static uint32_t bit(msg::JobStatus s) { return 1u << static_cast<uint32_t>(s); }
};

TEST_F(JobsRequestTest, FiltersByBranchAndStatusNewestFirstAndPagesById) {
  using S = msg::JobStatus;
  EXPECT_EQ(ids("", 0, 100), (std::vector<uint64_t>{6, 5, 4, 3, 2, 1}));
  EXPECT_EQ(ids("main", 0, 100), (std::vector<uint64_t>{5, 3, 1}));
  EXPECT_EQ(ids("", bit(S::kPassed), 100), (std::vector<uint64_t>{3, 2, 1}));
  EXPECT_EQ(ids("dev", bit(S::kPassed) | bit(S::kFailed), 100),
            (std::vector<uint64_t>{4, 2}));
  EXPECT_EQ(ids("", bit(S::kQueued), 100), (std::vector<uint64_t>{6, 5}));
  EXPECT_EQ(ids("", 0, 2), (std::vector<uint64_t>{6, 5}));
  EXPECT_EQ(ids("", 0, 2, 5), (std::vector<uint64_t>{4, 3}));
  EXPECT_EQ(ids("nobody", 0, 10), std::vector<uint64_t>{});
  EXPECT_EQ(ids("", 0, 10, 1), std::vector<uint64_t>{});
}

TEST_F(JobsRequestTest, AStatusMaskPastTheLastStatusIsRefusedAsABadField) {
  std::string h = msg::header_frame();
  const msg::JobsRequest q{5, "", 1u << 7, 1, 0};
  // encode() checks what it encodes; build the body by hand with the bad mask.
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_array(6);
  pk.pack(static_cast<int>(msg::MessageType::kJobsRequest));
  pk.pack(q.request_id);
  pk.pack(std::string());
  pk.pack(q.statuses);
  pk.pack(q.limit);
  pk.pack(uint64_t{0});
  raw("c", {h, std::string(buf.data(), buf.size())});
  auto err = out_.take<msg::Error>("c");
  ASSERT_EQ(err.size(), 1u);
  EXPECT_EQ(err[0].request_id, 5u);
  EXPECT_EQ(err[0].code, msg::ErrorCode::kBadRequest);
  EXPECT_EQ(d_->counter("rejected.bad_field"), 1u);
}

}  // namespace
}  // namespace simpleci::dispatcher
