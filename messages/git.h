// libgit2 helpers shared by the runner and the observer (library simpleci_git; the message
// library itself does not depend on libgit2).
#pragma once

#include <git2.h>

#include <memory>
#include <string>

namespace simpleci::git {

struct RepoCloser {
  void operator()(git_repository* r) const { git_repository_free(r); }
};
using Repo = std::unique_ptr<git_repository, RepoCloser>;

// "<what>: <libgit2's last error message>".
std::string error(const std::string& what);

// Opens exactly dir (no search upwards); nullptr with "not a git repository: DIR" otherwise.
Repo open(const std::string& dir, std::string* err);

// URL of the "origin" remote; false with *err when there is none.
bool origin_url(git_repository* repo, std::string* url, std::string* err);

// Fetches every branch of "origin" into refs/remotes/origin/*.
bool fetch_origin(git_repository* repo, std::string* err);

// Removes lock files ("*.lock": index.lock, ref locks) under <repo_dir>/.git that a process
// killed in the middle of git work left behind; they would make every later checkout or fetch
// fail. Call only while nothing else uses the repository (at start-up). Returns how many.
int remove_stale_locks(const std::string& repo_dir);

// 40 hex characters of an object id.
std::string oid_text(const git_oid* oid);

}  // namespace simpleci::git
