// CurveZMQ end to end: only runners whose public key is listed get work, and a test's output
// cannot be read on the wire.
#include <signal.h>

#include <fstream>
#include <set>

#include <gtest/gtest.h>

#include "net/curve.h"
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
  // The layout from before roles still works, with a warning that roles are not in force.
  EXPECT_TRUE(wait_until([&] { return c.logs().find("roles are not in force") != std::string::npos; }, 10s))
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

// Keys in role folders: a set of keys, one per role, and a dispatcher that knows them.
class Roles {
 public:
  Roles() {
    for (const auto& [name, folder] : std::vector<std::pair<std::string, std::string>>{
             {"server", ""}, {"builder", "runners"}, {"watcher", "observers"},
             {"dev", "clients"}, {"ops", "admins"}}) {
      RunResult k = run({bin("simpleci"), "keygen", name, "--dir", keys_.string()});
      EXPECT_EQ(k.exit_code, 0) << k.output;
      if (folder.empty()) continue;
      fs::create_directories(allowed_ / folder);
      fs::copy_file(keys_ / (name + ".pub"), allowed_ / folder / (name + ".pub"));
    }
  }
  Cluster c;
  std::vector<std::string> curve(const std::string& who) const {
    return {"--curve-server-key", (keys_ / "server.pub").string(), "--curve-secret-key",
            (keys_ / (who + ".key")).string()};
  }
  bool start() {
    return c.start_dispatcher("tcp://127.0.0.1:0", {"--curve-secret-key", (keys_ / "server.key").string(),
                                                    "--authorized-keys", allowed_.string()});
  }
  // The simpleci client under who's key.
  RunResult client(const std::string& who, std::vector<std::string> argv) const {
    argv.insert(argv.begin(), bin("simpleci"));
    argv.push_back("--dispatcher");
    argv.push_back(c.endpoint());
    for (auto& a : curve(who)) argv.push_back(a);
    return run(argv);
  }
  // One message under who's key, and the reply.
  std::optional<msg::Message> ask(const std::string& who, const msg::Message& m) const {
    std::string server, secret, err;
    EXPECT_TRUE(curve::load_key(keys_ / "server.pub", &server, &err)) << err;
    EXPECT_TRUE(curve::load_key(keys_ / (who + ".key"), &secret, &err)) << err;
    return itest::ask(c.endpoint(), m, 5s, server, secret);
  }
  msg::StatusReply status() const {
    auto m = ask("ops", msg::StatusRequest{99});
    EXPECT_TRUE(m && std::holds_alternative<msg::StatusReply>(*m));
    return m && std::holds_alternative<msg::StatusReply>(*m) ? std::get<msg::StatusReply>(*m)
                                                             : msg::StatusReply{};
  }

 private:
  fs::path keys_ = c.root() / "keys", allowed_ = c.root() / "authorized";
};

// The ERROR in m, when m is one with this code and request id.
bool refused(const std::optional<msg::Message>& m, uint64_t request_id) {
  const auto* e = m ? std::get_if<msg::Error>(&*m) : nullptr;
  return e && e->code == msg::ErrorCode::kUnauthorized && e->request_id == request_id;
}

TEST(Curve, EachKeyMaySendOnlyWhatItsRoleAllows) {
  Roles k;
  ASSERT_TRUE(k.start()) << k.c.logs();
  Cluster& c = k.c;

  // A client key that tries to be a runner is refused and never gets work.
  c.start_runner("dev", 1, k.curve("dev"));
  std::string id = c.upstream().commit({{".simpleci/test", script(0)}}, "roles");
  RunResult sub = k.client("watcher", {"submit", id});
  ASSERT_EQ(sub.exit_code, 0) << sub.output << c.logs();
  ASSERT_TRUE(wait_until([&] { return counter(k.status(), "rejected.unauthorized") >= 1; }, 10s)) << c.logs();
  msg::StatusReply st = k.status();
  EXPECT_TRUE(st.runners.empty());
  ASSERT_EQ(st.queue_length, 1u);
  EXPECT_TRUE(refused(k.ask("dev", msg::Register{"dev", 1, {}}), 0));

  // A runner key may neither submit nor cancel, and hears which request was refused.
  const std::string other = c.upstream().commit({{"x", "1"}}, "not submitted");
  EXPECT_TRUE(refused(k.ask("builder", msg::Commit{501, other, "main", true}), 501));
  EXPECT_TRUE(refused(k.ask("builder", msg::CancelRequest{502, 1}), 502));
  // Non-runner keys cannot report a result for the queued job.
  for (const char* who : {"ops", "watcher", "dev"}) {
    EXPECT_TRUE(refused(k.ask(who, msg::Result{1, 1, msg::JobStatus::kPassed, 0, 1, 2, false, "forged"}), 0))
        << who;
  }
  // An observer submits but cannot cancel; a client only reads.
  RunResult cancel = k.client("watcher", {"cancel", "1"});
  EXPECT_NE(cancel.exit_code, 0) << cancel.output;
  EXPECT_NE(cancel.output.find("may not send cancel_request"), std::string::npos) << cancel.output;
  EXPECT_NE(k.client("dev", {"submit", other}).exit_code, 0);
  EXPECT_EQ(k.client("dev", {"status"}).exit_code, 0);
  st = k.status();
  EXPECT_EQ(st.queue_length, 1u) << "nothing was queued or cancelled";
  EXPECT_GE(counter(st, "rejected.unauthorized"), 8u);
  EXPECT_FALSE(read_result(c.results_dir(), id).has_value());
  EXPECT_NE(c.logs().find("unauthorized"), std::string::npos);
  EXPECT_EQ(c.logs().find("roles are not in force"), std::string::npos) << "every key has a role";

  // An admin cancels.
  RunResult ok = k.client("ops", {"cancel", "1"});
  EXPECT_EQ(ok.exit_code, 0) << ok.output << c.logs();
  auto r = c.wait_result(id, 10s);
  ASSERT_TRUE(r) << c.logs();
  EXPECT_EQ((*r)["status"], "cancelled");

  // And a runner key runs jobs.
  c.forget_runner("dev");
  c.start_runner("builder", 1, k.curve("builder"));
  RunResult again = k.client("ops", {"submit", other});
  ASSERT_EQ(again.exit_code, 0) << again.output;
  r = c.wait_result(other, 30s);
  ASSERT_TRUE(r) << c.logs();
  EXPECT_EQ((*r)["status"], "passed");
  EXPECT_EQ((*r)["runner"], "builder");
}

TEST(Curve, ASecretKeyOthersCanReadIsRefusedByEveryComponent) {
  Roles k;
  Cluster& c = k.c;
  const fs::path keys = c.root() / "keys";
  for (const char* name : {"server", "builder", "ops"}) fs::permissions(keys / (std::string(name) + ".key"), fs::perms(0644));
  auto line = [&](const std::string& prog, const std::string& name) {
    const std::string f = (keys / (name + ".key")).string();
    return prog + ": " + f + " is readable by others (mode 0644); run chmod 600 " + f + "\n";
  };
  RunResult d = run({bin("simpleci-dispatcher"), "--bind", "tcp://127.0.0.1:0", "--state-dir",
                     (c.root() / "state").string(), "--results-dir", c.results_dir().string(),
                     "--log-dir", (c.root() / "logs").string(), "--curve-secret-key",
                     (keys / "server.key").string(), "--authorized-keys",
                     (c.root() / "authorized").string()});
  EXPECT_EQ(d.exit_code, 1);
  EXPECT_EQ(d.output, line("simpleci-dispatcher", "server"));
  std::vector<std::string> runner = {bin("simpleci-runner"), "--dispatcher", "tcp://127.0.0.1:9",
                                     "--name", "builder", "--log-dir", (c.root() / "logs").string()};
  for (auto& a : k.curve("builder")) runner.push_back(a);
  runner.push_back(c.upstream().dir().string());
  RunResult r = run(runner, {}, 10s);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.output, line("simpleci-runner", "builder"));
  std::vector<std::string> status = {bin("simpleci"), "status", "--dispatcher", "tcp://127.0.0.1:9"};
  for (auto& a : k.curve("ops")) status.push_back(a);
  RunResult s = run(status, {}, 10s);
  EXPECT_EQ(s.exit_code, 1);
  EXPECT_EQ(s.output, line("simpleci", "ops"));
}

TEST(Curve, KeygenCanAuthoriseTheKeyInItsRoleFolder) {
  TempDir tmp;
  const fs::path keys = tmp.path() / "keys", allowed = tmp.path() / "allowed";
  RunResult k = run({bin("simpleci"), "keygen", "builder-7", "--dir", keys.string(), "--authorize",
                     allowed.string(), "--role", "runner"});
  ASSERT_EQ(k.exit_code, 0) << k.output;
  EXPECT_EQ(read_text(allowed / "runners" / "builder-7.pub"), read_text(keys / "builder-7.pub"));
  curve::AuthorizedKeys loaded;
  std::string err;
  ASSERT_TRUE(curve::load_authorized_keys(allowed, &loaded, &err)) << err;
  ASSERT_EQ(loaded.size(), 1u);
  EXPECT_EQ(loaded.begin()->second, (curve::KeyEntry{"builder-7", Role::kRunner}));

  RunResult bad = run({bin("simpleci"), "keygen", "x", "--dir", keys.string(), "--authorize",
                       allowed.string(), "--role", "root"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_EQ(bad.output, "simpleci: --role must be runner, observer, client or admin, got 'root'\n");
  EXPECT_FALSE(fs::exists(keys / "x.key")) << "nothing is written after a bad flag";
}

}  // namespace
}  // namespace simpleci::itest
