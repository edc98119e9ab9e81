// The subcommands of `simpleci`, each a function that checks its arguments, asks the dispatcher
// (through an Asker, so tests can script the replies) or reads local files, prints to `out`, and
// returns the exit code: 0 success, 2 a usage error, 1 a runtime failure (one line on stderr),
// and for watch 3 when the job did not pass. main.cpp parses the command line and calls these.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "tools/client/session.h"

namespace simpleci::client {

class FeedSource;  // events.h

// runners, queue length, running jobs and counters; json: the JSON of format.h.
int status(Asker& d, bool json, int64_t now_ms, std::FILE* out);

// commit "": the newest `limit` jobs (1..kMaxListLen) as a table; a commit: its newest job in
// full with its output (no jobs for it: exit 1).
int results(Asker& d, const std::string& commit, int64_t limit, bool json, std::FILE* out);

struct SubmitArgs {
  std::string commit, branch;
  bool force = false;
  std::string repo{};     // the dispatcher's repository name ("": the unnamed one)
  std::string git_dir{};  // where to read the jobs folder; "": the repository around the current folder
};

// Queues a commit: "queued job N", or "already known as job N" (without force). The commit's
// jobs (.simpleci/jobs/, git/jobs_folder.h) are read from the local repository and sent with it;
// when there is no repository here or it lacks the commit, one line on err says so and the
// commit is submitted as one job. Entries of the jobs folder that are not jobs get a line on err.
// A --git-dir that is not a repository is a usage error.
int submit(Asker& d, const SubmitArgs& a, std::FILE* out, std::FILE* err);

// Cancel a queued or running job / queue a finished job's commit again; prints the
// dispatcher's OK text.
int cancel(Asker& d, int64_t job, std::FILE* out);
int retry(Asker& d, int64_t job, std::FILE* out);

// Prunes the jobs finished more than `days` days ago (1..kMaxPruneDays), in rounds: one request
// drops at most kMaxPrunePerRequest jobs, so it asks again while a round is full.
int prune(Asker& d, int64_t days, std::FILE* out);

// Tells the dispatcher that branches were pushed (none: any may have been), so it wakes its
// observers at once; prints "woke N observer(s)". For a post-receive hook (tools/post-receive).
// More than kMaxNotifyBranches branches wake the observers for any branch.
int notify(Asker& d, const std::vector<std::string>& branches, std::FILE* out);

// Prints a job's output (target: a job number, or a commit: its newest job) to out as it is
// produced, and what happens to the job (queued, running, restarted, bytes not kept, how it
// ended) to err, until the job ends. With a feed the output is pushed (following the job) and
// asked for only to fill gaps; while the feed is down, and without one, it asks every
// interval_ms.
int watch(Asker& d, const std::string& target, int64_t interval_ms, std::FILE* out, std::FILE* err,
          FeedSource* feed = nullptr);

// The log file of component (dispatcher, observer, runner-NAME; "runner" when exactly one
// runner log is in log_dir): 0 with *path set, or the exit code after one line (2 for a name
// that is not one or an ambiguous "runner", 1 when the file is not there).
int find_log(const std::string& component, const std::string& log_dir, std::filesystem::path* path);

// Prints a component's log; with follow, keeps printing what is appended (and follows the file
// through rotation, when a new file takes its name) until killed.
int logs(const std::string& component, const std::string& log_dir, bool follow, std::FILE* out);

// Writes key_dir/NAME.key (0600) and NAME.pub; with authorize_dir and role (runner, observer,
// client, admin) also copies NAME.pub into authorize_dir's folder for that role.
int keygen(const std::string& key_dir, const std::string& name, const std::string& authorize_dir,
           const std::string& role, std::FILE* out);

}  // namespace simpleci::client
