// The observer's git work, with libgit2: fetch origin, and list the commits of a branch that
// are newer than a cursor, oldest first.
#pragma once

#include <string>
#include <vector>

namespace simpleci::observer {

// Opens dir (must be a non-bare repository with an "origin" remote). One-line *err otherwise.
bool check_clone(const std::string& dir, std::string* err);

// The branch the clone has checked out ("main"); "" with *err when HEAD is detached.
std::string current_branch(const std::string& dir, std::string* err);

bool fetch_origin(const std::string& dir, std::string* err);

struct NewCommits {
  std::vector<std::string> commits;  // oldest first
  bool rewritten = false;            // the cursor is no longer an ancestor (force push)
  bool missing = false;              // origin has no such branch
};

// Commits of refs/remotes/origin/<branch> after cursor (exclusive), oldest first. With an
// empty cursor, or one that is not an ancestor of the tip, only the tip.
bool new_commits(const std::string& dir, const std::string& branch, const std::string& cursor,
                 size_t limit, NewCommits* out, std::string* err);

}  // namespace simpleci::observer
