// The runner's git work, with libgit2: opening or cloning its clone, the clones of the named
// repositories it serves (--cache), and making a slot's checkout hold a given commit. Checkouts
// run on the slots' worker threads.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "git/git.h"

namespace simpleci::runner {

// Checks that dir is a git repository with an "origin" remote; with repo_url non-empty and dir
// missing, clones it first. One-line *err on failure.
bool open_or_clone(const std::string& dir, const std::string& repo_url, std::string* err);

// Makes dir a new, empty repository (with a working tree) whose origin is url, fetching every
// branch into refs/remotes/origin/*; nothing is fetched yet. A clone made this way is filled by
// git::fetch_origin / fetch_branch, so whatever those do to connect (credentials) applies to it.
bool init_clone(const std::string& dir, const std::string& url, std::string* err);

// Sets remote.origin.url of repo to url when it says otherwise; *was gets what it said. False
// with *err when the config cannot be read or written.
bool point_origin_at(git_repository* repo, const std::string& url, std::string* was, std::string* err);

// What preparing a checkout came to.
enum class Prepared {
  kReady,          // *workdir holds the commit
  kMissingCommit,  // origin, fetched, does not have the commit: the commit's problem
  kFailed,         // clone, fetch or checkout failed: this runner's problem
};

// What a slot is to check out.
struct Checkout {
  std::string repo;    // "": the unnamed repository (the positional clone)
  std::string url;     // the URL in force for a named repository (runner.cpp chose it)
  std::string commit;
  std::string branch;  // the job's (may be empty): a fetch tries it alone first
};

// Seam for tests: makes the checkout of slot hold a commit.
class Workspace {
 public:
  virtual ~Workspace() = default;
  // Called on the slot's worker thread (one call per slot at a time). Fills *workdir with the
  // checkout's root, or *err.
  virtual Prepared prepare(int slot, const Checkout& c, std::string* workdir, std::string* err) = 0;
};

// Slot 0 is the clone itself; slot k > 0 is a clone of the same origin under
// <clone>/.git/simpleci/slots/<k>, made on first use. Each slot's repository stays open from
// one job to the next (no config, attributes or pack indexes read again per job). prepare()
// fetches when the commit is not already present (the job's branch alone first, every branch
// if that did not bring it), then checks it out (forced, untracked files removed, detached
// HEAD); libgit2 compares the target with the index and writes only the files that differ.
// After a fetch it merges the small packs once more than git::kPackLimit have piled up.
// With url non-empty, every slot's origin (the clone's too) is pointed at url when first
// opened, and slots are made with it; with url empty, slots are made with the clone's origin.
// Thread safety: prepare() may run on several threads at once for different slots.
class GitWorkspace {
 public:
  explicit GitWorkspace(std::string clone_dir, std::string url = "")
      : clone_dir_(std::move(clone_dir)), url_(std::move(url)) {}
  Prepared prepare(int slot, const std::string& commit, const std::string& branch,
                   std::string* workdir, std::string* err);
  const std::string& url() const { return url_; }

 private:
  // The slot's open repository, opened (and for slot > 0 cloned) when needed; the lock guards
  // only the map, each slot's handle being used by that slot's thread alone.
  git_repository* slot_repo(int slot, std::string* dir, std::string* err);
  bool fetch_commit(git_repository* repo, const git_oid& oid, const std::string& branch, std::string* err);
  void after_fetch(int slot, const std::string& dir);

  std::string clone_dir_, url_;
  std::mutex mu_;
  std::map<int, git::Repo> open_;
};

// The runner's workspaces, picked by the job's repository: the positional clone for the
// unnamed one (when given), and <cache>/<repo> for a named one (when --cache is given), made
// with init_clone() on first use, on the slot's worker thread. A repository whose URL in force
// changes gets a new GitWorkspace (checkouts still running keep the old one until they end),
// which points the clone's and slots' origin at the new URL.
class RepoWorkspaces final : public Workspace {
 public:
  // Either folder may be "" (not served). Both, when given, are absolute.
  RepoWorkspaces(std::string clone_dir, std::string cache_dir);
  Prepared prepare(int slot, const Checkout& c, std::string* workdir, std::string* err) override;

 private:
  std::shared_ptr<GitWorkspace> pick(const Checkout& c, std::string* err);

  std::string cache_dir_;
  std::shared_ptr<GitWorkspace> unnamed_;
  std::mutex mu_;  // guards named_ and the making of clones
  std::map<std::string, std::shared_ptr<GitWorkspace>> named_;
};

}  // namespace simpleci::runner
