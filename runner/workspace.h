// The runner's git work, with libgit2: opening or cloning its clone, and making a slot's
// checkout hold a given commit. One git_repository per call, so calls may run on worker threads.
#pragma once

#include <map>
#include <mutex>
#include <string>

#include "git/git.h"

namespace simpleci::runner {

// Checks that dir is a git repository with an "origin" remote; with repo_url non-empty and dir
// missing, clones it first. One-line *err on failure.
bool open_or_clone(const std::string& dir, const std::string& repo_url, std::string* err);

// What preparing a checkout came to.
enum class Prepared {
  kReady,          // *workdir holds the commit
  kMissingCommit,  // origin, fetched, does not have the commit: the commit's problem
  kFailed,         // clone, fetch or checkout failed: this runner's problem
};

// Seam for tests: makes the checkout of slot hold commit.
class Workspace {
 public:
  virtual ~Workspace() = default;
  // Called on the slot's worker thread (one call per slot at a time). branch is the job's (may
  // be empty): a fetch tries it alone first. Fills *workdir with the checkout's root, or *err.
  virtual Prepared prepare(int slot, const std::string& commit, const std::string& branch,
                           std::string* workdir, std::string* err) = 0;
};

// Slot 0 is the clone itself; slot k > 0 is a clone of the same origin under
// <clone>/.git/simpleci/slots/<k>, made on first use. Each slot's repository stays open from
// one job to the next (no config, attributes or pack indexes read again per job). prepare()
// fetches when the commit is not already present (the job's branch alone first, every branch
// if that did not bring it), then checks it out (forced, untracked files removed, detached
// HEAD); libgit2 compares the target with the index and writes only the files that differ.
// After a fetch it merges the small packs once more than git::kPackLimit have piled up.
class GitWorkspace final : public Workspace {
 public:
  explicit GitWorkspace(std::string clone_dir) : clone_dir_(std::move(clone_dir)) {}
  Prepared prepare(int slot, const std::string& commit, const std::string& branch,
                   std::string* workdir, std::string* err) override;

 private:
  // The slot's open repository, opened (and for slot > 0 cloned) when needed; the lock guards
  // only the map, each slot's handle being used by that slot's thread alone.
  git_repository* slot_repo(int slot, std::string* dir, std::string* err);
  bool fetch_commit(git_repository* repo, const git_oid& oid, const std::string& branch, std::string* err);
  void after_fetch(int slot, const std::string& dir);

  std::string clone_dir_;
  std::mutex mu_;
  std::map<int, git::Repo> open_;
};

}  // namespace simpleci::runner
