// The observer's git work, with libgit2: learn whether origin's watched branches moved, fetch
// them when they did, and list the commits of a branch that are newer than a cursor, oldest
// first.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "git/git.h"
#include "git/jobs_folder.h"

namespace simpleci::observer {

// --branch values: a branch name, or an fnmatch pattern ('*', '?', '[...]') over branch names
// whose '*' and '?' do not cross a '/' (FNM_PATHNAME: release/* matches release/1.0, not
// release/1.0/rc).
bool is_pattern(const std::string& s);
// A valid --branch value: a valid branch name, or a pattern that would be one with its wildcard
// characters taken out.
bool is_valid_branch_pattern(const std::string& s);
// Whether branch matches one of patterns (a plain name matches only itself).
bool branch_matches(const std::vector<std::string>& patterns, const std::string& branch);

// Makes dir a clone-to-be of url without cloning: an empty repository (git init) whose
// remote.origin.url is url, so the first fetch fills it; an existing one gets its
// remote.origin.url set to url when it differs. One-line *err on failure.
bool init_clone(const std::string& dir, const std::string& url, std::string* err);

// Opens dir (must be a non-bare repository with an "origin" remote). One-line *err otherwise.
bool check_clone(const std::string& dir, std::string* err);

// The branch the clone has checked out ("main"); "" with *err when HEAD is detached.
std::string current_branch(const std::string& dir, std::string* err);

struct NewCommits {
  std::vector<std::string> commits;  // oldest first
  bool rewritten = false;            // the cursor is no longer an ancestor (force push)
  bool missing = false;              // origin has no such branch
};

// The clone and (when it is on this machine) origin, kept open across polls. A poll used to
// fetch every time: opening the clone, reading its config, negotiating with origin and listing
// its packs cost 3-4 % of a core at --poll-ms 100 with nothing new. Now a poll first reads
// origin's tips of the watched branches (from origin's refs on disk when origin is a local
// folder, else with one ls-remote style connection) and fetches only when one differs from the
// clone's refs/remotes/origin/<branch> or is missing there. Any error drops the handles, so the
// next poll starts afresh (a repository replaced on disk is opened again).
class GitWatch {
 public:
  // read_local: read a local origin's refs directly (false: ask it as a remote one, with
  // ls-remote; tests use it to reach that path without a server).
  explicit GitWatch(std::string clone_dir, bool read_local = true)
      : dir_(std::move(clone_dir)), read_local_(read_local) {}

  // Fetches origin when one of branches moved there (or appeared) since the clone last fetched
  // it; then merges small packs when too many piled up. A branch origin lacks is no reason to
  // fetch. One-line *err on failure.
  bool update(const std::vector<std::string>& branches, std::string* err);

  // The same for every branch of origin that matches one of patterns, or with no patterns for
  // origin's default branch (its HEAD): lists all of origin's branches (from a local origin's
  // refs, else with one ls-remote style connection), then fetches when a selected one moved.
  bool update_matching(const std::vector<std::string>& patterns, std::string* err);

  // The selected branches origin had at the last successful update, with their tips: a branch
  // missing here is gone from origin (or never was).
  const git::Tips& tips() const { return tips_; }

  // The jobs folder of a commit of the clone (git/jobs_folder.h).
  bool jobs(const std::string& commit, git::JobsFolder* out, std::string* err);

  // Commits of refs/remotes/origin/<branch> after cursor (exclusive), oldest first. With an
  // empty cursor, or one that is not an ancestor of the tip, only the tip.
  bool new_commits(const std::string& branch, const std::string& cursor, size_t limit, NewCommits* out,
                   std::string* err);

  uint64_t fetches() const { return fetches_; }  // since start: tests check polls that need none
  bool origin_is_local() const { return origin_ != nullptr; }

 private:
  bool open(std::string* err);
  bool origin_tips(const std::vector<std::string>& branches, git::Tips* tips, std::string* err);
  bool all_origin_tips(git::Tips* tips, std::string* head, std::string* err);
  bool fetch_if_moved(std::string* err);
  bool moved(const git::Tips& tips) const;
  bool fetch(std::string* err);

  std::string dir_;
  bool read_local_;
  git::Repo clone_;
  git::Repo origin_;  // origin itself when it is a folder on this machine
  git::Tips tips_;
  uint64_t fetches_ = 0;
};

}  // namespace simpleci::observer
