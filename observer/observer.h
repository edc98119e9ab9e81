// The observer's logic: poll git on a timer, queue every new commit of the watched branches
// (oldest first), send each as COMMIT, and move the per-branch cursor (kept in a state file)
// only past commits the dispatcher ACCEPTED, strictly in order. Unanswered COMMITs are re-sent
// (the dispatcher deduplicates them); a silent dispatcher gets a fresh connection with backoff.
// It says OBSERVER_HELLO on connecting and every kObserverHelloMs, and a WAKE from the dispatcher
// (a push was notified) makes it poll at once, though never sooner than min_wake_gap after its
// last poll, so a flood of notifies costs at most one poll per gap.
//
// It watches either one clone (Options::clone_dir: the unnamed repository, as always) or, with
// Options::cache_dir, every repository the dispatcher declares: its OBSERVER_HELLO then says
// serves_all, the dispatcher answers with REPOS, and each repository NAME gets its own clone
// cache_dir/NAME (made on first use) and cursor file. Branches are picked by Options::branches
// (names or fnmatch patterns); a branch that starts to match is taken at its tip, one that
// leaves origin is dropped from the cursor. Every COMMIT carries the commit's jobs folder.
// Single-threaded; tests drive it with a FakeClock and call poll_git() directly.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/clock.h"
#include "messages/codec.h"
#include "net/dealer.h"
#include "common/logging.h"
#include "observer/git_watch.h"

namespace simpleci::observer {

using net::Link;

struct Options {
  std::string clone_dir;              // the one clone (the unnamed repository); or:
  std::string cache_dir;              // every declared repository, in cache_dir/NAME
  std::vector<std::string> branches;  // names or patterns; none: each repository's default branch
  std::string state_file;             // the clone's cursor file (cache: cache_dir/NAME/.git/simpleci/...)
  std::map<std::string, std::string> repo_urls;  // --repo-url: always wins over the dispatcher's
  bool authenticated = false;  // CURVE: the URLs in REPOS may be used
  Millis poll{1000};
  Millis resend{2000};      // no ACCEPTED within this: send the COMMIT again
  size_t window = 64;       // COMMITs in flight at once
  Millis min_wake_gap{msg::kMinWakeGapMs};  // a WAKE polls no sooner than this after the last poll
  Millis hello{msg::kObserverHelloMs};      // OBSERVER_HELLO interval
};

class Observer {
 public:
  Observer(Clock& clock, Link& link, Options opt);

  // Reads the clone's cursors from the state file (missing file: first start). Nothing to do
  // with cache_dir: each repository's file is read when it is first used.
  bool load_state(std::string* err);
  // Set when the dispatcher speaks another protocol version: main stops, prints it, exits 1.
  const std::string& version_error() const { return version_error_; }
  // Fetches origin when a watched branch moved there, and queues new commits. False (logged)
  // when origin could not be read or fetched.
  bool poll_git();
  void on_frames(const std::string& header, const std::string& body);
  // Polls git when due, sends, re-sends, reconnects.
  void tick();
  Millis next_wakeup() const;

  // A repository's cursors (branch -> last accepted commit) and git; "" is the clone's.
  // Empty / nullptr for a repository not watched (yet).
  const std::map<std::string, std::string>& cursors(const std::string& repo = "") const;
  const GitWatch& git() const { return *repos_.at("").git; }
  const GitWatch* git_of(const std::string& repo) const;
  // The repositories watched (cache_dir: those REPOS named and a URL is known for).
  std::vector<std::string> repos() const;
  uint64_t polls() const { return polls_; }

 private:
  struct Repo {
    std::string name, dir, url, state_file;
    std::unique_ptr<GitWatch> git;  // null until the clone is made and its cursors read
    std::map<std::string, std::string> cursors;
  };
  struct Item {
    std::string repo, branch, commit;
    std::vector<msg::JobSpec> jobs;
    uint64_t request_id = 0;
    bool sent = false, accepted = false;
    SteadyTime sent_at{}, retry_at{};
  };
  bool ready(Repo& r);
  bool poll_repo(Repo& r);
  void drop_gone_branches(Repo& r);
  void queue(Repo& r, const std::string& branch, const std::string& commit);
  void set_repos(const msg::Repos& m);
  void send_due();
  void say_hello(SteadyTime now);
  void wake(const msg::Wake& w);
  void advance();
  static bool load_state(Repo& r, std::string* err);
  static bool save_state(const Repo& r, std::string* err);

  Clock& clock_;
  Link& link_;
  Options opt_;
  std::map<std::string, Repo> repos_;  // by name
  std::set<std::string> no_url_;       // declared repositories skipped for want of a URL
  std::deque<Item> items_;
  uint64_t next_request_ = 1;
  SteadyTime next_poll_{}, last_poll_{}, last_reply_{}, reconnect_at_{}, next_hello_{};
  uint64_t polls_ = 0;
  bool waiting_reconnect_ = false;
  Millis backoff_{1000};
  LogLimiter bad_log_;
  std::string version_error_;
};

}  // namespace simpleci::observer
