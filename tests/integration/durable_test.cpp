// The real dispatcher under the events of issue 7: killed with results in flight, flooded with
// commits, pruned. Runners and observers are played by DEALER sockets in the test, speaking the
// protocol, so the test controls exactly what is in flight when the dispatcher dies.
#include <sys/stat.h>

#include <cstdio>
#include <set>

#include <gtest/gtest.h>
#include <zmq.hpp>

#include "messages/codec.h"
#include "net/request.h"
#include "net/transport.h"
#include "tests/integration/cluster.h"

namespace simpleci::itest {
namespace {

using namespace std::chrono_literals;

std::string commit_no(int n) {
  char buf[41];
  std::snprintf(buf, sizeof buf, "%040x", n + 0xc0ffee);
  return buf;
}

// One peer on its own DEALER: send, and wait (with a deadline) for what is wanted.
class Peer {
 public:
  explicit Peer(const std::string& endpoint) : s_(net::make_dealer(ctx_, endpoint)) {}
  void send(const msg::Message& m) { ASSERT_TRUE(net::send(s_, m)); }
  // Every decodable message that arrives within `timeout` and satisfies `done` stops the wait.
  std::vector<msg::Message> collect(milliseconds timeout, const std::function<bool(const msg::Message&)>& done) {
    std::vector<msg::Message> got;
    wait_until(
        [&] {
          zmq::pollitem_t item{s_.handle(), 0, ZMQ_POLLIN, 0};
          zmq::poll(&item, 1, std::min<milliseconds>(timeout, 20ms));
          while (auto r = net::recv(s_, true, 2)) {
            msg::Decoded d = net::decode_frames(*r, 0);
            if (!d.ok()) continue;
            got.push_back(std::move(d.message));
            if (done(got.back())) return true;
          }
          return false;
        },
        timeout);
    return got;
  }
  std::optional<msg::Message> ask(const msg::Message& req) {
    send(req);
    const uint64_t id = net::request_id_of(req);
    auto got = collect(5s, [&](const msg::Message& m) { return net::request_id_of(m) == id; });
    if (got.empty()) return std::nullopt;
    return got.back();
  }

 private:
  zmq::context_t ctx_{1};
  zmq::socket_t s_;
};

// The newest job of a commit with its stored output, as the dispatcher's store holds it.
std::optional<msg::ResultsReply> stored(Peer& p, const std::string& commit, uint64_t id) {
  auto m = p.ask(msg::ResultsRequest{id, commit, 1, true});
  if (!m || !std::holds_alternative<msg::ResultsReply>(*m)) return std::nullopt;
  return std::get<msg::ResultsReply>(*m);
}

std::vector<std::string> temp_files(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().find(".tmp.") != std::string::npos) out.push_back(e.path().string());
  }
  return out;
}

// Every final job in the store has both files, and they hold what the store holds.
void expect_files_match_store(Cluster& c, Peer& client, int commits, std::set<std::string>* final_commits) {
  for (int n = 0; n < commits; ++n) {
    const std::string commit = commit_no(n);
    auto r = stored(client, commit, 1000 + n);
    ASSERT_TRUE(r) << commit;
    ASSERT_EQ(r->jobs.size(), 1u) << commit;
    if (!msg::is_final(r->jobs[0].status)) continue;
    final_commits->insert(commit);
    EXPECT_EQ(read_text(c.results_dir() / commit), r->output) << "output file of " << commit;
    auto j = read_result(c.results_dir(), commit);
    ASSERT_TRUE(j) << "no summary file for final job of " << commit;
    EXPECT_EQ((*j)["job_id"], r->jobs[0].job_id);
    EXPECT_EQ((*j)["status"], std::string(msg::to_string(r->jobs[0].status)));
  }
}

TEST(Durability, KilledRightAfterTheFirstAckTheDispatcherLosesNoResultFile) {
  constexpr int kJobs = 120;
  constexpr size_t kOutputBytes = 512 * 1024;
  Cluster c(5000);  // the fake runner sends no heartbeats: 15 s before it counts as gone
  ASSERT_TRUE(c.start_dispatcher()) << c.logs();
  {
    Peer observer(c.endpoint());
    for (int n = 0; n < kJobs; ++n) observer.send(msg::Commit{static_cast<uint64_t>(n + 1), commit_no(n), "main", false});
    int accepted = 0;
    observer.collect(20s, [&](const msg::Message& m) { return std::holds_alternative<msg::Accepted>(m) && ++accepted == kJobs; });
    ASSERT_EQ(accepted, kJobs) << c.logs();
  }
  Peer runner(c.endpoint());
  runner.send(msg::Register{"fake", 256, {}});
  std::vector<msg::Job> jobs;
  runner.collect(20s, [&](const msg::Message& m) {
    if (const auto* j = std::get_if<msg::Job>(&m)) jobs.push_back(*j);
    return jobs.size() == kJobs;
  });
  ASSERT_EQ(jobs.size(), static_cast<size_t>(kJobs)) << c.logs();
  std::map<uint64_t, msg::Result> results;
  for (const auto& j : jobs) {
    std::string out(kOutputBytes, static_cast<char>('a' + j.job_id % 26));
    out.replace(0, j.commit.size(), j.commit);
    results[j.job_id] = msg::Result{j.job_id, j.attempt, msg::JobStatus::kPassed, 0, 1, 2, false, out};
  }
  // Results go out one by one; the dispatcher dies the moment the first RESULT_ACK is seen.
  std::set<uint64_t> acked;
  auto take_acks = [&](milliseconds wait) {
    runner.collect(wait, [&](const msg::Message& m) {
      if (const auto* a = std::get_if<msg::ResultAck>(&m)) acked.insert(a->job_id);
      return !acked.empty();
    });
  };
  size_t sent = 0;
  for (auto& [id, r] : results) {  // in bursts, so they reach the dispatcher over several rounds
    runner.send(r);
    if (++sent % 8 == 0) take_acks(5ms);
    if (!acked.empty()) break;
  }
  if (acked.empty()) take_acks(20s);
  c.dispatcher().signal(9);
  ASSERT_FALSE(acked.empty()) << c.logs();
  c.dispatcher().stop(9, 5s);
  runner.collect(200ms, [&](const msg::Message& m) {  // acks that left before the kill count too
    if (const auto* a = std::get_if<msg::ResultAck>(&m)) acked.insert(a->job_id);
    return false;
  });

  ASSERT_TRUE(c.start_dispatcher()) << c.logs();
  EXPECT_TRUE(temp_files(c.results_dir()).empty()) << temp_files(c.results_dir()).front();
  Peer client(c.endpoint());
  std::set<std::string> final_commits;
  expect_files_match_store(c, client, kJobs, &final_commits);
  for (uint64_t id : acked) {  // what was acknowledged is in the store (the runner forgot it)
    EXPECT_TRUE(final_commits.count(results[id].output.substr(0, 40))) << "acked job " << id << " not final";
  }
  std::printf("sent %zu, acked before the kill: %zu, final in the store after it: %zu of %d\n", sent,
              acked.size(), final_commits.size(), kJobs);

  // The runner comes back holding what was not acknowledged and sends it again: everything ends.
  Peer again(c.endpoint());
  std::vector<uint64_t> held;
  for (const auto& [id, r] : results) {
    if (!acked.count(id)) held.push_back(id);
  }
  again.send(msg::Register{"fake", 256, held});
  again.collect(10s, [](const msg::Message& m) { return std::holds_alternative<msg::Welcome>(m); });
  for (uint64_t id : held) again.send(results[id]);
  size_t acks = 0;
  if (!held.empty()) {
    again.collect(30s, [&](const msg::Message& m) { return std::holds_alternative<msg::ResultAck>(m) && ++acks == held.size(); });
  }
  EXPECT_EQ(acks, held.size()) << c.logs();
  // The files follow the acknowledgement (the writer thread makes them after the flush): wait for
  // the last summary before comparing everything with the store.
  EXPECT_TRUE(wait_until([&] {
    for (int n = 0; n < kJobs; ++n) {
      if (!read_result(c.results_dir(), commit_no(n))) return false;
    }
    return true;
  }, 30s)) << c.logs();
  final_commits.clear();
  expect_files_match_store(c, client, kJobs, &final_commits);
  EXPECT_EQ(final_commits.size(), static_cast<size_t>(kJobs));
}

TEST(Durability, TheStateFolderAndTheDatabaseArePrivate) {
  Cluster c;
  ASSERT_TRUE(c.start_dispatcher()) << c.logs();
  struct stat st {};
  ASSERT_EQ(::stat(c.state_dir().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(::stat((c.state_dir() / "simpleci.db").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(c.results_dir().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0750u) << "group may read (a web server), nobody else writes";
}

TEST(Limits, SubmitPastMaxQueuedSaysTheQueueIsFull) {
  Cluster c;
  ASSERT_TRUE(c.start_dispatcher("tcp://127.0.0.1:0", {"--max-queued", "3"})) << c.logs();
  for (int n = 0; n < 3; ++n) {
    RunResult r = run({bin("simpleci"), "submit", commit_no(n), "--dispatcher", c.endpoint()});
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  RunResult full = run({bin("simpleci"), "submit", commit_no(3), "--dispatcher", c.endpoint()});
  EXPECT_EQ(full.exit_code, 1);
  EXPECT_TRUE(full.output.ends_with(
      "\nsimpleci: the dispatcher's queue is full (3 jobs queued, the limit is 3); try again later\n"))
      << full.output;
  RunResult known = run({bin("simpleci"), "submit", commit_no(1), "--dispatcher", c.endpoint()});
  EXPECT_EQ(known.exit_code, 0) << "a known commit is answered: " << known.output;
  auto st = query_status(c.endpoint());
  ASSERT_TRUE(st);
  EXPECT_EQ(st->queue_length, 3u);
  EXPECT_EQ(counter(*st, "jobs.refused_queue_full"), 1u);
}

TEST(Prune, OldJobsLoseTheirOutputAndFilesThroughTheClient) {
  Cluster c;
  ASSERT_TRUE(c.start_dispatcher()) << c.logs();
  Peer observer(c.endpoint());
  for (int n = 0; n < 3; ++n) {
    auto m = observer.ask(msg::Commit{static_cast<uint64_t>(n + 1), commit_no(n), "main", false});
    ASSERT_TRUE(m && std::holds_alternative<msg::Accepted>(*m)) << c.logs();
  }
  // A runner whose results carry timestamps 40 days old (jobs 1, 2) and fresh (job 3).
  Peer runner(c.endpoint());
  runner.send(msg::Register{"fake", 8, {}});
  std::vector<msg::Job> jobs;
  runner.collect(10s, [&](const msg::Message& m) {
    if (const auto* j = std::get_if<msg::Job>(&m)) jobs.push_back(*j);
    return jobs.size() == 3;
  });
  ASSERT_EQ(jobs.size(), 3u) << c.logs();
  const int64_t now = std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  const int64_t old = now - 40LL * 24 * 3600 * 1000;
  for (const auto& j : jobs) {
    const bool is_old = j.commit != commit_no(2);
    runner.send(msg::Result{j.job_id, j.attempt, msg::JobStatus::kPassed, 0, is_old ? old - 5 : now - 5,
                            is_old ? old : now, false, "output of " + j.commit});
  }
  for (int n = 0; n < 3; ++n) ASSERT_TRUE(c.wait_result(commit_no(n), 10s)) << c.logs();

  RunResult bad = run({bin("simpleci"), "prune", "--older-than", "0", "--dispatcher", c.endpoint()});
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  RunResult r = run({bin("simpleci"), "prune", "--older-than", "30", "--dispatcher", c.endpoint()});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "pruned 2 job(s) finished more than 30 days ago\n");
  ASSERT_TRUE(wait_until([&] { return !fs::exists(c.results_dir() / commit_no(0)); }, 5s));
  EXPECT_FALSE(fs::exists(c.results_dir() / (commit_no(1) + ".json")));
  EXPECT_TRUE(fs::exists(c.results_dir() / (commit_no(2) + ".json")));
  auto kept = query_results(c.endpoint(), commit_no(0));
  ASSERT_TRUE(kept && kept->jobs.size() == 1u) << "the job stays in the history";
  EXPECT_EQ(kept->jobs[0].status, msg::JobStatus::kPassed);

  // After a restart the pruned jobs' files are not written again.
  c.dispatcher().stop(15, 5s);
  ASSERT_TRUE(c.start_dispatcher()) << c.logs();
  EXPECT_FALSE(fs::exists(c.results_dir() / commit_no(0)));
  EXPECT_TRUE(fs::exists(c.results_dir() / commit_no(2)));
  RunResult again = run({bin("simpleci"), "prune", "--older-than", "30", "--dispatcher", c.endpoint()});
  EXPECT_EQ(again.output, "pruned 0 job(s) finished more than 30 days ago\n");
}

}  // namespace
}  // namespace simpleci::itest
