// The runner's git work, with libgit2: opening or cloning its clone, and making a slot's
// checkout hold a given commit. One git_repository per call, so calls may run on worker threads.
#pragma once

#include <string>

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
  // Called on a worker thread. Fills *workdir with the checkout's root, or *err with why not.
  virtual Prepared prepare(int slot, const std::string& commit, std::string* workdir,
                           std::string* err) = 0;
};

// Slot 0 is the clone itself; slot k > 0 is a clone of the same origin under
// <clone>/.git/simpleci/slots/<k>, made on first use. prepare() fetches origin when the commit
// is not already present, then checks it out (forced, untracked files removed, detached HEAD);
// after a fetch it merges the small packs once more than git::kPackLimit have piled up.
class GitWorkspace final : public Workspace {
 public:
  explicit GitWorkspace(std::string clone_dir) : clone_dir_(std::move(clone_dir)) {}
  Prepared prepare(int slot, const std::string& commit, std::string* workdir,
                   std::string* err) override;

 private:
  std::string clone_dir_;
};

}  // namespace simpleci::runner
