// simpleci: the command-line client. Parses the command line and calls the subcommand in
// tools/client/commands.h: status, results, submit, watch, events, cancel, retry, prune, notify
// (they talk to the dispatcher), logs (reads a component's log), keygen (makes CurveZMQ key pairs).
#include <cstdio>
#include <functional>
#include <vector>

#include "app/cli.h"
#include "common/clock.h"
#include "common/logging.h"
#include "messages/limits.h"
#include "tools/client/commands.h"
#include "tools/client/events.h"

using namespace simpleci;

namespace {

// Every value the command line can give, whichever subcommand it is for.
struct Args {
  client::ConnectOptions connect;
  bool json = false, force = false, follow = false, follow_output = false;
  client::SubmitArgs submit;
  std::string commit, branch, target, component, log_dir = kDefaultLogDir;
  std::string key_dir = ".", name, authorize_dir, role;
  std::vector<std::string> branches;
  int64_t limit = msg::kDefaultResultsLimit, job = 0, interval_ms = msg::kDefaultWatchIntervalMs, older_than = 0;
};

// A subcommand and what running it does.
struct Command {
  CLI::App* sub;
  std::function<int()> run;
};

std::vector<Command> talking_commands(CLI::App& app, Args& a, client::Session& d, client::FeedSource& f) {
  std::vector<Command> c;
  auto* s = app.add_subcommand("status", "runners, queue, running jobs, counters");
  s->add_flag("--json", a.json, "print JSON");
  c.push_back({s, [&] { return client::status(d, a.json, SystemClock().wall_ms(), stdout); }});
  s = app.add_subcommand("results", "recent results, or one commit in full");
  s->add_option("COMMIT", a.commit, "commit id");
  s->add_option("--limit", a.limit, cli::with_range("how many jobs", 1, msg::kMaxListLen));
  s->add_flag("--json", a.json, "print JSON");
  c.push_back({s, [&] { return client::results(d, a.commit, a.limit, a.json, stdout); }});
  s = app.add_subcommand("submit", "queue a commit by hand");
  s->add_option("COMMIT", a.submit.commit, "commit id")->required();
  s->add_option("--branch", a.submit.branch, "its branch");
  s->add_flag("--force", a.submit.force, "test again even if it was tested");
  s->add_option("--repo", a.submit.repo, "the dispatcher's repository it belongs to (default: the unnamed one)");
  s->add_option("--git-dir", a.submit.git_dir,
                "the repository to read the commit's .simpleci/jobs/ from (default: the one around the current folder)");
  c.push_back({s, [&] { return client::submit(d, a.submit, stdout, stderr); }});
  s = app.add_subcommand("watch", "print a job's output as it runs; exit 0 if it passes, 3 if not");
  s->add_option("JOB_OR_COMMIT", a.target, "job number, or commit id (its newest job)")->required();
  s->add_option("--interval-ms", a.interval_ms,
                cli::with_range("how often to ask for new output while the event feed is down (output is pushed "
                                "otherwise)",
                                msg::kMinWatchIntervalMs, msg::kMaxWatchIntervalMs));
  c.push_back({s, [&] { return client::watch(d, a.target, a.interval_ms, stdout, stderr, &f); }});
  s = app.add_subcommand("events", "print one line per event as it happens, until interrupted");
  s->add_flag("--json", a.json, "one JSON object per line");
  s->add_flag("--follow-output", a.follow_output, "also print every running job's output chunks");
  c.push_back({s, [&] {
                 client::install_stop_signals();
                 SystemClock clock;
                 return client::events(f, clock, a.json, a.follow_output, stdout);
               }});
  s = app.add_subcommand("cancel", "cancel a queued or running job");
  s->add_option("JOB", a.job, "job number")->required();
  c.push_back({s, [&] { return client::cancel(d, a.job, stdout); }});
  s = app.add_subcommand("retry", "queue a finished job's commit again");
  s->add_option("JOB", a.job, "job number")->required();
  c.push_back({s, [&] { return client::retry(d, a.job, stdout); }});
  s = app.add_subcommand("prune", "drop the stored output and result files of old jobs (admin)");
  s->add_option("--older-than", a.older_than, cli::with_range("days since the job finished", 1, msg::kMaxPruneDays))
      ->required();
  c.push_back({s, [&] { return client::prune(d, a.older_than, stdout); }});
  s = app.add_subcommand("notify", "tell the observers a push happened (from a post-receive hook)");
  s->add_option("--branch", a.branches, "a branch that was pushed (repeatable; none: any)");
  c.push_back({s, [&] { return client::notify(d, a.branches, stdout); }});
  return c;
}

std::vector<Command> local_commands(CLI::App& app, Args& a) {
  std::vector<Command> c;
  auto* s = app.add_subcommand("logs", "print (or follow) a component's log");
  s->add_option("COMPONENT", a.component, "dispatcher, observer, runner-NAME or runner")->required();
  s->add_flag("-f,--follow", a.follow, "keep printing new lines");
  s->add_option("--log-dir", a.log_dir, "log folder");
  c.push_back({s, [&] { return client::logs(a.component, a.log_dir, a.follow, stdout); }});
  s = app.add_subcommand("keygen", "make a CurveZMQ key pair NAME.key / NAME.pub");
  s->add_option("NAME", a.name, "key name")->required();
  s->add_option("--dir", a.key_dir, "folder for the key files (default .)");
  s->add_option("--authorize", a.authorize_dir, "also copy NAME.pub into this authorised-keys folder");
  s->add_option("--role", a.role, "with --authorize: runner|observer|client|admin");
  c.push_back({s, [&] { return client::keygen(a.key_dir, a.name, a.authorize_dir, a.role, stdout); }});
  return c;
}

// A first word that is not a subcommand: one line naming the ones there are (CLI11 would take
// it for an extra argument).
cli::Stop unknown_command(int argc, char** argv, const std::vector<Command>& commands) {
  if (argc < 2 || argv[1][0] == '-') return std::nullopt;
  std::string names;
  for (const auto& c : commands) {
    if (c.sub->get_name() == argv[1]) return std::nullopt;
    names += (names.empty() ? "" : ", ") + c.sub->get_name();
  }
  return cli::fail(client::kProgram, std::string("unknown command '") + argv[1] + "' (" + names + ")",
                   cli::kUsageError);
}

int run_main(int argc, char** argv) {
  CLI::App app{"simpleCI client"};
  app.require_subcommand(1);
  app.fallthrough();
  Args a;
  a.connect.conn.add(app, "this client");
  app.add_option("--timeout-ms", a.connect.timeout_ms,
                 cli::with_range("how long to wait for an answer, default " +
                                     std::to_string(msg::kDefaultClientTimeoutMs), 1, msg::kMaxClientTimeoutMs));
  client::Session dispatcher(a.connect);
  client::NetFeedSource feed(a.connect);
  std::vector<Command> commands = talking_commands(app, a, dispatcher, feed);
  for (auto& c : local_commands(app, a)) commands.push_back(std::move(c));
  if (auto stop = unknown_command(argc, argv, commands)) return *stop;
  if (auto stop = cli::parse(app, argc, argv, client::kProgram)) return *stop;
  for (const auto& c : commands) {
    if (c.sub->parsed()) return c.run();
  }
  return cli::fail(client::kProgram, "no subcommand", cli::kUsageError);
}

}  // namespace

int main(int argc, char** argv) { return cli::guarded_main(client::kProgram, run_main, argc, argv); }
