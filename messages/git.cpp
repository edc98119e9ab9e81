#include "messages/git.h"

#include <filesystem>

namespace simpleci::git {

std::string error(const std::string& what) {
  const ::git_error* e = git_error_last();
  return what + ": " + (e && e->message ? e->message : "unknown libgit2 error");
}

Repo open(const std::string& dir, std::string* err) {
  git_repository* r = nullptr;
  if (git_repository_open_ext(&r, dir.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH, nullptr) != 0) {
    *err = "not a git repository: " + dir;
    return nullptr;
  }
  return Repo(r);
}

bool origin_url(git_repository* repo, std::string* url, std::string* err) {
  git_remote* remote = nullptr;
  if (git_remote_lookup(&remote, repo, "origin") != 0) {
    *err = "the repository has no 'origin' remote";
    return false;
  }
  const char* u = git_remote_url(remote);
  *url = u ? u : "";
  git_remote_free(remote);
  return true;
}

bool fetch_origin(git_repository* repo, std::string* err) {
  git_remote* remote = nullptr;
  if (git_remote_lookup(&remote, repo, "origin") != 0) {
    *err = "the repository has no 'origin' remote";
    return false;
  }
  git_fetch_options opts = GIT_FETCH_OPTIONS_INIT;
  int rc = git_remote_fetch(remote, nullptr, &opts, nullptr);
  if (rc != 0) *err = error("fetch from origin failed");
  git_remote_free(remote);
  return rc == 0;
}

int remove_stale_locks(const std::string& repo_dir) {
  namespace fs = std::filesystem;
  int removed = 0;
  std::error_code ec;
  fs::path git_dir = fs::path(repo_dir) / ".git";
  for (auto it = fs::recursive_directory_iterator(git_dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (it->is_regular_file(ec) && it->path().extension() == ".lock" && fs::remove(it->path(), ec)) ++removed;
  }
  return removed;
}

std::string oid_text(const git_oid* oid) {
  char buf[GIT_OID_HEXSZ + 1];
  git_oid_tostr(buf, sizeof buf, oid);
  return buf;
}

}  // namespace simpleci::git
