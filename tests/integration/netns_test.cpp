// Several machines for real: the dispatcher, the git server, the observer and two runners each in
// their own network namespace, joined by veth pairs to a bridge that lives in a namespace of its
// own (so the host's firewall rules never see the traffic). Addresses are private
// (10.213.N.0/24). Needs root; elsewhere the test reports itself skipped with the reason.
#include <unistd.h>

#include <gtest/gtest.h>

#include "tests/integration/cluster.h"

namespace simpleci::itest {
namespace {

using namespace std::chrono_literals;

class Namespaces {
 public:
  Namespaces() : prefix_("sci" + std::to_string(::getpid() % 100000)) {
    subnet_ = "10.213." + std::to_string(20 + ::getpid() % 200) + ".";
  }
  ~Namespaces() {
    for (const auto& ns : created_) run({"ip", "netns", "del", ns});
  }

  // Creates the hub namespace with its bridge. False with *why when namespaces are unavailable.
  bool start(std::string* why) {
    if (::geteuid() != 0) {
      *why = "network namespaces need root";
      return false;
    }
    return ip({"netns", "add", ns("hub")}, why) &&
           ip({"-n", ns("hub"), "link", "add", "br0", "type", "bridge"}, why) &&
           ip({"-n", ns("hub"), "link", "set", "br0", "up"}, why);
  }

  // A namespace for node with address subnet.<host>, linked to the bridge.
  bool add(const std::string& node, int host, std::string* why) {
    std::string inner = prefix_ + node + "i", outer = prefix_ + node + "o";
    return ip({"netns", "add", ns(node)}, why) &&
           ip({"link", "add", inner, "type", "veth", "peer", "name", outer}, why) &&
           ip({"link", "set", inner, "netns", ns(node)}, why) &&
           ip({"link", "set", outer, "netns", ns("hub")}, why) &&
           ip({"-n", ns("hub"), "link", "set", outer, "master", "br0"}, why) &&
           ip({"-n", ns("hub"), "link", "set", outer, "up"}, why) &&
           ip({"-n", ns(node), "addr", "add", addr(host) + "/24", "dev", inner}, why) &&
           ip({"-n", ns(node), "link", "set", inner, "up"}, why) &&
           ip({"-n", ns(node), "link", "set", "lo", "up"}, why);
  }

  // Cuts or restores node's cable (its port on the bridge).
  bool set_link(const std::string& node, bool up) {
    std::string why;
    return ip({"-n", ns("hub"), "link", "set", prefix_ + node + "o", up ? "up" : "down"}, &why);
  }

  std::vector<std::string> in(const std::string& node, std::vector<std::string> argv) const {
    argv.insert(argv.begin(), {"ip", "netns", "exec", ns(node)});
    return argv;
  }
  std::string addr(int host) const { return subnet_ + std::to_string(host); }

 private:
  std::string ns(const std::string& node) const { return prefix_ + node; }
  bool ip(std::vector<std::string> args, std::string* why) {
    args.insert(args.begin(), "ip");
    RunResult r = run(args);
    if (r.exit_code != 0) {
      *why = "ip " + args[1] + " failed: " + r.output;
      return false;
    }
    if (args[1] == "netns" && args[2] == "add") created_.push_back(args[3]);
    return true;
  }

  std::string prefix_, subnet_;
  std::vector<std::string> created_;
};

std::string first_line(const fs::path& p) {
  std::string s = read_text(p);
  return s.substr(0, s.find('\n'));
}

TEST(SeveralMachines, RunnerCutOffMidJobIsRequeuedAndComesBack) {
  Namespaces net;
  std::string why;
  if (!net.start(&why)) GTEST_SKIP() << why;
  for (auto [node, host] : {std::pair{"d", 1}, {"g", 2}, {"o", 3}, {"ra", 4}, {"rb", 5}}) {
    ASSERT_TRUE(net.add(node, host, &why)) << why;
  }
  TempDir tmp;
  fs::path logs = tmp.path() / "logs", results = tmp.path() / "results";
  GitRepo up = GitRepo::init(tmp.path() / "repos" / "upstream");
  fs::path marks = tmp.path() / "marks";
  fs::create_directories(marks);
  std::string tip = up.commit({{".simpleci/test", script(0)}}, "first");

  Process git("git-daemon",
              net.in("g", {"git", "daemon", "--reuseaddr", "--export-all", "--listen=" + net.addr(2),
                           "--base-path=" + (tmp.path() / "repos").string(),
                           (tmp.path() / "repos").string()}),
              tmp.path() / "git.out");
  std::string url = "git://" + net.addr(2) + "/upstream";
  std::string endpoint = "tcp://" + net.addr(1) + ":7788";
  Process disp("dispatcher",
               net.in("d", {bin("simpleci-dispatcher"), "--bind", endpoint, "--insecure",
                            "--state-dir", (tmp.path() / "state").string(), "--results-dir",
                            results.string(), "--heartbeat-ms", "200", "--log-dir", logs.string()}),
               tmp.path() / "dispatcher.out");
  ASSERT_FALSE(wait_for_endpoint(tmp.path() / "state").empty()) << disp.log();

  // Runners clone over the network themselves (--repo); the observer's clone points there too.
  std::map<std::string, std::unique_ptr<Process>> runners;
  for (std::string r : {"ra", "rb"}) {
    runners[r] = std::make_unique<Process>(
        r, net.in(r, {bin("simpleci-runner"), "--dispatcher", endpoint, "--name", r, "--repo", url,
                      "--log-dir", logs.string(), "--kill-grace-ms", "500", "--insecure",
                      (tmp.path() / ("clone-" + r)).string()}),
        tmp.path() / (r + ".out"));
  }
  fs::path oclone = tmp.path() / "clone-o";
  GitRepo::clone(up.dir(), oclone).git({"remote", "set-url", "origin", url});
  Process obs("observer",
              net.in("o", {bin("simpleci-observer"), "--dispatcher", endpoint, "--poll-ms", "100",
                           "--log-dir", logs.string(), oclone.string()}),
              tmp.path() / "observer.out");
  auto all_logs = [&] {
    std::string s;
    for (const char* f : {"dispatcher.out", "ra.out", "rb.out", "observer.out", "git.out"}) {
      s += std::string("----- ") + f + "\n" + read_text(tmp.path() / f);
    }
    return s;
  };
  ASSERT_TRUE(wait_until([&] { return read_result(results, tip).has_value(); }, 60s)) << all_logs();

  std::string slow = "basename \"$PWD\" >> " + marks.string() + "/started\nsleep 3";
  std::string id = up.commit({{".simpleci/test", script(0, slow)}}, "slow");
  ASSERT_TRUE(wait_until([&] { return !first_line(marks / "started").empty(); }, 30s)) << all_logs();
  std::string victim = first_line(marks / "started").substr(6);  // "clone-ra" -> "ra"
  ASSERT_TRUE(victim == "ra" || victim == "rb") << victim;
  auto cut_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(net.set_link(victim, false));

  // The job starts again on the other runner once the victim is declared dead.
  ASSERT_TRUE(wait_until([&] { return read_text(marks / "started").find('\n') != read_text(marks / "started").rfind('\n'); }, 30s))
      << all_logs();
  auto requeued_ms = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - cut_at).count();
  std::printf("[ figures  ] link cut -> job restarted elsewhere: %lld ms (heartbeat 200 ms)\n",
              static_cast<long long>(requeued_ms));
  std::optional<nlohmann::json> r;
  ASSERT_TRUE(wait_until([&] { return (r = read_result(results, id)).has_value(); }, 30s)) << all_logs();
  EXPECT_EQ((*r)["status"], "passed") << r->dump();
  EXPECT_EQ((*r)["attempt"], 2) << r->dump();
  EXPECT_NE((*r)["runner"], victim) << r->dump();

  // Cable back: the victim registers again (its name shows in status with a fresh heartbeat).
  ASSERT_TRUE(net.set_link(victim, true));
  ASSERT_TRUE(wait_until(
      [&] {
        RunResult s = run(net.in("o", {bin("simpleci"), "status", "--json", "--dispatcher", endpoint,
                                       "--timeout-ms", "1000"}));
        if (s.exit_code != 0) return false;
        try {
          auto j = nlohmann::json::parse(s.output);
          for (const auto& rr : j.at("runners")) {
            if (rr.at("name") == victim) return true;
          }
        } catch (const std::exception&) {
        }
        return false;
      },
      60s))
      << all_logs();
  // And it takes work again: a burst spread over both.
  std::vector<std::string> more;
  for (int i = 0; i < 4; ++i) more.push_back(up.commit({{".simpleci/test", script(0, "sleep 0.3")}, {"n", std::to_string(i)}}, "more"));
  for (const auto& m : more) {
    ASSERT_TRUE(wait_until([&] { return read_result(results, m).has_value(); }, 60s)) << all_logs();
  }
  obs.stop();
  for (auto& [n, p] : runners) p->stop();
  disp.stop();
  git.stop();
}

}  // namespace
}  // namespace simpleci::itest
