#include "tools/client/commands.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <thread>
#include <vector>

#include "git/git.h"
#include "git/jobs_folder.h"
#include "messages/limits.h"
#include "messages/validate.h"
#include "net/curve.h"
#include "net/roles.h"
#include "tools/client/events.h"
#include "tools/client/format.h"
#include "tools/client/watch.h"

namespace simpleci::client {

namespace fs = std::filesystem;

namespace {

int fail(const std::string& problem, int code) { return cli::fail(kProgram, problem, code); }

int not_a_commit(const std::string& arg) {
  return fail("not a commit id (40 or 64 hex characters): '" + arg + "'", cli::kUsageError);
}

// Asks and expects a reply of type T: 0 with *out pointing into *reply, or the exit code.
template <class T>
int ask_for(Asker& d, const msg::Message& req, msg::Message* reply, const T** out) {
  if (int rc = d.ask(req, reply)) return rc;
  *out = std::get_if<T>(reply);
  return *out ? 0 : unexpected_reply();
}

int print(std::FILE* out, const std::string& text) {
  std::fputs(text.c_str(), out);
  return 0;
}

int job_request(Asker& d, const msg::Message& req, int64_t job, std::FILE* out) {
  if (job < 1) return fail("JOB must be a job number (1 or more), got " + std::to_string(job), cli::kUsageError);
  msg::Message rep;
  const msg::Ok* ok = nullptr;
  if (int rc = ask_for(d, req, &rep, &ok)) return rc;
  return print(out, ok->text + "\n");
}

// The newest job of a commit, for watch; 0 after printing why there is none.
int newest_job(Asker& d, const std::string& commit, uint64_t* job) {
  msg::Message rep;
  const msg::ResultsReply* r = nullptr;
  if (int rc = ask_for(d, msg::ResultsRequest{1, commit, 1, false}, &rep, &r)) return rc;
  if (r->jobs.empty()) return fail("no jobs for " + commit, cli::kRuntimeError);
  *job = r->jobs[0].job_id;
  return 0;
}

void show(const WatchView::Step& s, std::FILE* out, std::FILE* err) {
  std::fflush(out);
  for (const auto& n : s.notes) std::fprintf(err, "%s\n", n.c_str());
  std::fwrite(s.output.data(), 1, s.output.size(), out);
  std::fflush(out);
  if (s.ended) std::fprintf(err, "%s\n", s.summary.c_str());
}

// How long watch waits on a feed in step before it looks again (the feed's own timers cut it
// short when they are due).
constexpr Millis kFeedWait(1000);

// What `simpleci watch` does with the dispatcher's replies and the feed's pushes: each byte of
// the job's output shown once, in order. Asks (WATCH_REQUEST) for what the pushes do not bring:
// the output before the subscription, after a break, a gap before a chunk, the rest at the end.
class Watcher final : public net::FeedHandler {
 public:
  Watcher(Asker& d, uint64_t job, Millis interval, std::FILE* out, std::FILE* err)
      : d_(d), job_(job), interval_(interval), view_(job), out_(out), err_(err) {}

  bool going_on() const { return rc_ < 0; }
  int exit_code() const { return rc_; }

  // Asks until the dispatcher has nothing more for now (a reply that is not full); once the
  // job finished, until its reply is complete.
  void catch_up() {
    while (going_on()) {
      msg::Message rep;
      const msg::WatchReply* w = nullptr;
      if (int rc = ask_for(d_, view_.next_request(++request_id_), &rep, &w)) {
        rc_ = rc;
        return;
      }
      const WatchView::Step step = view_.take(*w);
      show(step, out_, err_);
      if (step.ended) rc_ = step.exit_code;
      if (w->data.size() >= msg::kMaxWatchBytes) continue;
      if (!finished_ || !going_on()) return;
      std::this_thread::sleep_for(interval_);  // finished, but not all of it stored yet
    }
  }

  void on_snapshot(const msg::Snapshot&) override { catch_up(); }
  void on_event(const msg::Event& e) override {
    if (e.jobs.empty() || e.jobs[0].job_id != job_) return;
    const auto kind = static_cast<msg::EventKind>(e.kind);
    if (kind == msg::EventKind::kJobFinished) finished_ = true;
    if (finished_ || kind == msg::EventKind::kJobStarted || kind == msg::EventKind::kJobRequeued) catch_up();
  }
  void on_output(const msg::JobOutput& o) override {
    if (o.job_id != job_ || !going_on()) return;
    std::optional<WatchView::Step> step = view_.take_chunk(o, false);
    if (!step) {
      catch_up();  // the bytes before it first
      if (!going_on()) return;
      step = view_.take_chunk(o, true);
    }
    show(*step, out_, err_);
  }

 private:
  Asker& d_;
  uint64_t job_;
  Millis interval_;
  WatchView view_;
  std::FILE *out_, *err_;
  uint64_t request_id_ = 1;
  bool finished_ = false;
  int rc_ = -1;  // the exit code once the job ended (or a request failed)
};

}  // namespace

int status(Asker& d, bool json, int64_t now_ms, std::FILE* out) {
  msg::Message rep;
  const msg::StatusReply* s = nullptr;
  if (int rc = ask_for(d, msg::StatusRequest{1}, &rep, &s)) return rc;
  return print(out, json ? status_json(*s) : status_text(*s, now_ms));
}

int results(Asker& d, const std::string& commit_arg, int64_t limit, bool json, std::FILE* out) {
  const std::string commit = commit_arg.empty() ? "" : normalize_commit_id(commit_arg);
  if (!commit_arg.empty() && commit.empty()) return not_a_commit(commit_arg);
  if (!cli::in_range(kProgram, "--limit", limit, 1, msg::kMaxListLen)) return cli::kUsageError;
  msg::Message rep;
  const msg::ResultsReply* r = nullptr;
  const msg::ResultsRequest req{1, commit, static_cast<uint32_t>(limit), !commit.empty()};
  if (int rc = ask_for(d, req, &rep, &r)) return rc;
  if (!commit.empty() && r->jobs.empty()) return fail("no jobs for " + commit, cli::kRuntimeError);
  return print(out, json ? results_json(*r) : results_text(*r, !commit.empty()));
}

namespace {

// libgit2 set up for as long as the object lives.
struct GitLibrary {
  GitLibrary() { git_libgit2_init(); }
  ~GitLibrary() { git_libgit2_shutdown(); }
  GitLibrary(const GitLibrary&) = delete;
  GitLibrary& operator=(const GitLibrary&) = delete;
};

// The jobs folder of commit in the local repository: 0 with *jobs filled (and a line on err for
// each entry that is not a job, or for a missing repository or commit: then no jobs), or the
// exit code of a usage error.
int local_jobs(const std::string& git_dir, const std::string& commit, std::vector<msg::JobSpec>* jobs,
               std::FILE* err) {
  GitLibrary lib;
  git_repository* r = nullptr;
  const bool found = git_dir.empty() ? git_repository_open_ext(&r, ".", 0, nullptr) == 0
                                     : git_repository_open_ext(&r, git_dir.c_str(), 0, nullptr) == 0;
  git::Repo repo(r);
  auto one_job = [&](const std::string& why) {
    std::fprintf(err, "%s: %s: submitting it as one job\n", kProgram, why.c_str());
    return 0;
  };
  if (!found && !git_dir.empty()) return fail("--git-dir: not a git repository: " + git_dir, cli::kUsageError);
  if (!found) return one_job("no git repository in the current folder to read .simpleci/jobs/ from");
  const char* where = git_repository_workdir(repo.get()) ? git_repository_workdir(repo.get())
                                                           : git_repository_path(repo.get());
  git_oid id;
  git_commit* c = nullptr;
  if (git_oid_fromstrn(&id, commit.data(), commit.size()) != 0 || git_commit_lookup(&c, repo.get(), &id) != 0) {
    return one_job("the repository " + std::string(where) + " does not have commit " + commit);
  }
  git_commit_free(c);
  git::JobsFolder folder;
  std::string problem;
  if (!git::read_jobs_folder(repo.get(), id, &folder, &problem)) return one_job(problem);
  for (const auto& note : folder.notes) std::fprintf(err, "%s: %s\n", kProgram, note.c_str());
  *jobs = std::move(folder.jobs);
  return 0;
}

}  // namespace

int submit(Asker& d, const SubmitArgs& args, std::FILE* out, std::FILE* err) {
  const std::string commit = normalize_commit_id(args.commit);
  if (commit.empty()) return not_a_commit(args.commit);
  if (!is_valid_branch(args.branch)) {
    return fail("--branch: not a valid branch name: '" + args.branch + "'", cli::kUsageError);
  }
  if (!args.repo.empty() && !is_safe_name(args.repo)) {
    return fail("--repo: not a repository name: '" + args.repo + "'", cli::kUsageError);
  }
  std::vector<msg::JobSpec> jobs;
  if (int rc = local_jobs(args.git_dir, commit, &jobs, err)) return rc;
  msg::Message rep;
  const msg::Accepted* a = nullptr;
  if (int rc = ask_for(d, msg::Commit{1, commit, args.branch, args.force, args.repo, std::move(jobs)}, &rep, &a)) {
    return rc;
  }
  return print(out, (a->duplicate ? "already known as job " : "queued job ") + std::to_string(a->job_id) + "\n");
}

int cancel(Asker& d, int64_t job, std::FILE* out) {
  return job_request(d, msg::CancelRequest{1, static_cast<uint64_t>(job)}, job, out);
}

int retry(Asker& d, int64_t job, std::FILE* out) {
  return job_request(d, msg::RetryRequest{1, static_cast<uint64_t>(job)}, job, out);
}

int prune(Asker& d, int64_t days, std::FILE* out) {
  if (!cli::in_range(kProgram, "--older-than", days, 1, msg::kMaxPruneDays)) return cli::kUsageError;
  uint64_t total = 0;
  for (uint64_t id = 1;; ++id) {
    msg::Message rep;
    const msg::Ok* ok = nullptr;
    if (int rc = ask_for(d, msg::PruneRequest{id, static_cast<uint32_t>(days)}, &rep, &ok)) return rc;
    total += ok->job_id;  // OK's job_id: how many this round pruned
    if (ok->job_id < msg::kMaxPrunePerRequest) break;
  }
  return print(out, "pruned " + std::to_string(total) + " job(s) finished more than " + std::to_string(days) +
                        " days ago\n");
}

int notify(Asker& d, const std::vector<std::string>& branches, std::FILE* out) {
  msg::Notify n{1, {}};
  for (const auto& b : branches) {
    if (b.empty() || !is_valid_branch(b)) return fail("--branch: not a valid branch name: '" + b + "'", cli::kUsageError);
    if (std::find(n.branches.begin(), n.branches.end(), msg::BranchName{b}) == n.branches.end()) {
      n.branches.push_back({b});
    }
  }
  if (n.branches.size() > msg::kMaxNotifyBranches) n.branches.clear();  // a big push: any branch
  msg::Message rep;
  const msg::Ok* ok = nullptr;
  if (int rc = ask_for(d, n, &rep, &ok)) return rc;
  return print(out, ok->text + "\n");
}

int watch(Asker& d, const std::string& target, int64_t interval_ms, std::FILE* out, std::FILE* err,
          FeedSource* feed) {
  if (!cli::in_range(kProgram, "--interval-ms", interval_ms, msg::kMinWatchIntervalMs, msg::kMaxWatchIntervalMs)) {
    return cli::kUsageError;
  }
  uint64_t job = 0;
  std::string commit;
  if (!parse_watch_target(target, &job, &commit)) {
    return fail("watch needs a job number (1 or more) or a commit id (40 or 64 hex characters), got '" + target + "'",
                cli::kUsageError);
  }
  if (!commit.empty()) {
    if (int rc = newest_job(d, commit, &job)) return rc;
  }
  const Millis interval(interval_ms);
  Watcher w(d, job, interval, out, err);
  w.catch_up();  // what there is now; the job may be over
  if (!w.going_on()) return w.exit_code();
  if (!feed) {
    while (w.going_on()) {
      std::this_thread::sleep_for(interval);
      w.catch_up();
    }
    return w.exit_code();
  }
  if (int rc = feed->start({job}, false)) return rc;
  // Pushed output while the feed is in step; asking every interval while it is not.
  auto next_ask = std::chrono::steady_clock::now() + interval;
  while (w.going_on()) {
    const auto now = std::chrono::steady_clock::now();
    if (!feed->in_step() && now >= next_ask) {
      w.catch_up();
      next_ask = now + interval;
      continue;
    }
    feed->run_for(feed->in_step() ? kFeedWait : std::chrono::ceil<Millis>(next_ask - now), w);
  }
  feed->stop();
  return w.exit_code();
}

int find_log(const std::string& component_arg, const std::string& log_dir, fs::path* path) {
  std::string component = component_arg;
  if (component == "runner") {
    std::vector<std::string> found;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(log_dir, ec)) {
      const std::string n = e.path().filename().string();
      if (n.starts_with("runner-") && e.path().extension() == ".log") found.push_back(n.substr(0, n.size() - 4));
    }
    if (found.size() != 1) {
      return fail(std::to_string(found.size()) + " runner logs in " + log_dir + "; name one (runner-NAME)",
                  cli::kUsageError);
    }
    component = found[0];
  }
  if (!is_safe_name(component)) return fail("not a component name: '" + component + "'", cli::kUsageError);
  *path = fs::path(log_dir) / (component + ".log");
  std::error_code ec;
  if (!fs::is_regular_file(*path, ec)) return fail("no log at " + path->string(), cli::kRuntimeError);
  return 0;
}

int logs(const std::string& component, const std::string& log_dir, bool follow, std::FILE* out) {
  fs::path path;
  if (int rc = find_log(component, log_dir, &path)) return rc;
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail("no log at " + path.string(), cli::kRuntimeError);
  struct stat st {};
  ::stat(path.c_str(), &st);
  ino_t inode = st.st_ino;
  std::streamoff pos = 0;
  char buf[65536];
  while (true) {
    in.clear();
    in.seekg(pos);
    while (in.read(buf, sizeof buf) || in.gcount() > 0) {
      std::fwrite(buf, 1, static_cast<size_t>(in.gcount()), out);
      pos += in.gcount();
    }
    std::fflush(out);
    if (!follow) return 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    struct stat now {};
    if (::stat(path.c_str(), &now) == 0 && (now.st_ino != inode || now.st_size < pos)) {
      in.close();  // rotated or truncated: start on the new file
      in.open(path, std::ios::binary);
      inode = now.st_ino;
      pos = 0;
    }
  }
}

int keygen(const std::string& key_dir, const std::string& name, const std::string& authorize_dir,
           const std::string& role, std::FILE* out) {
  if (authorize_dir.empty() != role.empty()) return fail("--authorize and --role go together", cli::kUsageError);
  const std::optional<Role> r = role_from_folder(role + "s");
  if (!role.empty() && !r) {
    return fail("--role must be runner, observer, client or admin, got '" + role + "'", cli::kUsageError);
  }
  std::string err;
  std::error_code ec;
  fs::create_directories(key_dir, ec);
  if (!curve::keygen(key_dir, name, &err)) return fail(err, cli::kRuntimeError);
  const fs::path pub = fs::path(key_dir) / (name + ".pub");
  std::fprintf(out, "wrote %s (secret, keep it private) and %s\n", (fs::path(key_dir) / (name + ".key")).c_str(),
               pub.c_str());
  if (!r) return 0;
  const fs::path to = fs::path(authorize_dir) / folder_of(*r) / (name + ".pub");
  fs::create_directories(to.parent_path(), ec);
  fs::copy_file(pub, to, ec);
  if (ec) return fail("cannot copy to '" + to.string() + "': " + ec.message(), cli::kRuntimeError);
  std::fprintf(out, "authorised %s as a %s: %s (send the dispatcher SIGHUP to apply)\n", name.c_str(), role.c_str(),
               to.c_str());
  return 0;
}

}  // namespace simpleci::client
