// CurveZMQ end to end: only runners whose public key is listed get work, and a test's output
// cannot be read on the wire.
#include <signal.h>

#include <fstream>
#include <set>

#include <gtest/gtest.h>

#include "tests/integration/cluster.h"
#include "tests/integration/relay.h"

namespace simpleci::itest {
namespace {

using namespace std::chrono_literals;

int port_of(const std::string& endpoint) { return std::stoi(endpoint.substr(endpoint.rfind(':') + 1)); }

TEST(Curve, OnlyListedRunnersGetWorkAndOutputIsNotReadableOnTheWire) {
  Cluster c;
  fs::path keys = c.root() / "keys", allowed = c.root() / "authorized";
  fs::create_directories(allowed);
  for (const char* name : {"server", "good", "intruder"}) {
    RunResult k = run({bin("simpleci"), "keygen", name, "--dir", keys.string()});
    ASSERT_EQ(k.exit_code, 0) << k.output;
  }
  fs::copy_file(keys / "good.pub", allowed / "good.pub");
  ASSERT_TRUE(c.start_dispatcher("tcp://127.0.0.1:0",
                                 {"--curve-secret-key", (keys / "server.key").string(),
                                  "--authorized-keys", allowed.string()}))
      << c.logs();
  TcpRelay relay(port_of(c.endpoint()));
  std::string via_relay = "tcp://127.0.0.1:" + std::to_string(relay.port());
  auto curve = [&](const std::string& who) {
    return std::vector<std::string>{"--curve-server-key", (keys / "server.pub").string(),
                                    "--curve-secret-key", (keys / (who + ".key")).string()};
  };
  auto client = [&](std::vector<std::string> argv) {
    argv.insert(argv.begin(), bin("simpleci"));
    for (auto& a : std::vector<std::string>{"--dispatcher", c.endpoint()}) argv.push_back(a);
    for (auto& a : curve("good")) argv.push_back(a);
    return run(argv);
  };

  // The intruder connects first and must get nothing.
  c.start_runner("intruder", 1, curve("intruder"));
  const std::string secret = "the-secret-output-7f3a";
  std::string id = c.upstream().commit({{".simpleci/test", script(0, "echo " + secret)}}, "secret");
  RunResult sub = client({"submit", id});
  ASSERT_EQ(sub.exit_code, 0) << sub.output << c.logs();
  RunResult st = client({"status", "--json"});
  ASSERT_EQ(st.exit_code, 0) << st.output;
  EXPECT_EQ(st.output.find("intruder"), std::string::npos) << st.output;
  EXPECT_FALSE(read_result(c.results_dir(), id).has_value());

  // The listed runner, talking through the recording relay, gets the job.
  fs::path clone = c.root() / "clones" / "good";
  GitRepo::clone(c.upstream().dir(), clone);
  Process good("good", {bin("simpleci-runner"), "--dispatcher", via_relay, "--name", "good",
                        "--log-dir", (c.root() / "logs").string(), "--curve-server-key",
                        (keys / "server.pub").string(), "--curve-secret-key",
                        (keys / "good.key").string(), clone.string()},
               c.root() / "good.out");
  auto r = c.wait_result(id, 30s);
  ASSERT_TRUE(r) << c.logs() << good.log();
  EXPECT_EQ((*r)["status"], "passed");
  EXPECT_EQ((*r)["runner"], "good");
  EXPECT_NE(read_text(c.results_dir() / id).find(secret), std::string::npos);
  std::string wire = relay.captured();
  EXPECT_GT(wire.size(), 1000u);
  EXPECT_EQ(wire.find(secret), std::string::npos) << "output readable on the wire";
  EXPECT_EQ(wire.find(id), std::string::npos) << "commit id readable on the wire";
  good.stop();
}

TEST(Curve, WithoutCurveTheRelaySeesPlainText) {
  // Control for the test above: the same capture does see the output when CURVE is off.
  Cluster c;
  ASSERT_TRUE(c.start_dispatcher()) << c.logs();
  TcpRelay relay(port_of(c.endpoint()));
  const std::string secret = "plain-output-19bd";
  std::string id = c.upstream().commit({{".simpleci/test", script(0, "echo " + secret)}}, "plain");
  fs::path clone = c.root() / "clones" / "plain";
  GitRepo::clone(c.upstream().dir(), clone);
  Process runner("plain", {bin("simpleci-runner"), "--dispatcher",
                           "tcp://127.0.0.1:" + std::to_string(relay.port()), "--name", "plain",
                           "--log-dir", (c.root() / "logs").string(), clone.string()},
                 c.root() / "plain.out");
  RunResult sub = run({bin("simpleci"), "submit", id, "--dispatcher", c.endpoint()});
  ASSERT_EQ(sub.exit_code, 0) << sub.output;
  ASSERT_TRUE(c.wait_result(id, 30s)) << c.logs() << runner.log();
  EXPECT_NE(relay.captured().find(secret), std::string::npos);
  runner.stop();
}

TEST(Curve, SighupReloadsTheAuthorisedKeys) {
  Cluster c;
  fs::path keys = c.root() / "keys", allowed = c.root() / "authorized";
  fs::create_directories(allowed);
  for (const char* name : {"server", "admin", "r1", "r2"}) {
    RunResult k = run({bin("simpleci"), "keygen", name, "--dir", keys.string()});
    ASSERT_EQ(k.exit_code, 0) << k.output;
  }
  fs::copy_file(keys / "admin.pub", allowed / "admin.pub");
  fs::copy_file(keys / "r1.pub", allowed / "r1.pub");
  ASSERT_TRUE(c.start_dispatcher("tcp://127.0.0.1:0",
                                 {"--curve-secret-key", (keys / "server.key").string(),
                                  "--authorized-keys", allowed.string()}))
      << c.logs();
  auto curve = [&](const std::string& who) {
    return std::vector<std::string>{"--curve-server-key", (keys / "server.pub").string(),
                                    "--curve-secret-key", (keys / (who + ".key")).string()};
  };
  std::string last;  // the newest status answer, for failure messages
  auto runners = [&]() {
    std::vector<std::string> argv = {bin("simpleci"), "status", "--json", "--dispatcher", c.endpoint()};
    for (auto& a : curve("admin")) argv.push_back(a);
    RunResult st = run(argv);
    last = "exit " + std::to_string(st.exit_code) + ": " + st.output;
    if (st.exit_code != 0) return std::set<std::string>{"?"};
    std::set<std::string> names;
    const nlohmann::json j = nlohmann::json::parse(st.output);
    for (const auto& r : j["runners"]) names.insert(r["name"].get<std::string>());
    return names;
  };
  c.start_runner("r1", 1, curve("r1"));
  c.start_runner("r2", 1, curve("r2"));
  ASSERT_TRUE(wait_until([&] { return runners() == std::set<std::string>{"r1"}; }, 30s)) << last << c.logs();

  // Swap the keys: r1 out, r2 in; then tell the dispatcher.
  fs::remove(allowed / "r1.pub");
  fs::copy_file(keys / "r2.pub", allowed / "r2.pub");
  c.dispatcher().signal(SIGHUP);
  ASSERT_TRUE(wait_until([&] { return runners() == std::set<std::string>{"r2"}; }, 30s)) << last << c.logs();
  std::string id = c.upstream().commit({{".simpleci/test", script(0)}}, "after the swap");
  std::vector<std::string> submit = {bin("simpleci"), "submit", id, "--dispatcher", c.endpoint()};
  for (auto& a : curve("admin")) submit.push_back(a);
  RunResult sub = run(submit);
  ASSERT_EQ(sub.exit_code, 0) << sub.output;
  auto r = c.wait_result(id, 30s);
  ASSERT_TRUE(r) << c.logs();
  EXPECT_EQ((*r)["runner"], "r2");
  EXPECT_TRUE(c.dispatcher().running()) << "SIGHUP reloads; it does not stop the dispatcher";

  // A folder that now holds a broken key is not taken: the current list stays.
  std::ofstream(allowed / "broken.pub") << "not a key\n";
  c.dispatcher().signal(SIGHUP);
  ASSERT_TRUE(wait_until([&] { return c.logs().find("keeping the current authorised keys") != std::string::npos; }, 10s))
      << c.logs();
  EXPECT_EQ(runners(), std::set<std::string>{"r2"});
}

}  // namespace
}  // namespace simpleci::itest
