#include "observer/git_watch.h"

#include <git2.h>

#include <memory>

namespace simpleci::observer {

namespace {

std::string libgit2_error(const std::string& what) {
  const ::git_error* e = git_error_last();
  return what + ": " + (e && e->message ? e->message : "unknown libgit2 error");
}

struct RepoCloser {
  void operator()(git_repository* r) const { git_repository_free(r); }
};
using Repo = std::unique_ptr<git_repository, RepoCloser>;

Repo open_repo(const std::string& dir, std::string* err) {
  git_repository* r = nullptr;
  if (git_repository_open_ext(&r, dir.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH, nullptr) != 0) {
    *err = "not a git repository: " + dir;
    return nullptr;
  }
  return Repo(r);
}

std::string oid_text(const git_oid* oid) {
  char buf[GIT_OID_HEXSZ + 1];
  git_oid_tostr(buf, sizeof buf, oid);
  return buf;
}

}  // namespace

bool check_clone(const std::string& dir, std::string* err) {
  Repo repo = open_repo(dir, err);
  if (!repo) return false;
  git_remote* remote = nullptr;
  if (git_remote_lookup(&remote, repo.get(), "origin") != 0) {
    *err = "the clone has no 'origin' remote: " + dir;
    return false;
  }
  git_remote_free(remote);
  return true;
}

std::string current_branch(const std::string& dir, std::string* err) {
  Repo repo = open_repo(dir, err);
  if (!repo) return "";
  git_reference* head = nullptr;
  if (git_repository_head(&head, repo.get()) != 0 || !git_reference_is_branch(head)) {
    // An unborn branch still has a name in HEAD.
    if (head) git_reference_free(head);
    git_reference* sym = nullptr;
    if (git_reference_lookup(&sym, repo.get(), "HEAD") == 0 &&
        git_reference_type(sym) == GIT_REFERENCE_SYMBOLIC) {
      std::string target = git_reference_symbolic_target(sym);
      git_reference_free(sym);
      if (target.rfind("refs/heads/", 0) == 0) return target.substr(11);
    }
    if (sym) git_reference_free(sym);
    *err = "the clone's HEAD is not on a branch; give --branch: " + dir;
    return "";
  }
  std::string name = git_reference_shorthand(head);
  git_reference_free(head);
  return name;
}

bool fetch_origin(const std::string& dir, std::string* err) {
  Repo repo = open_repo(dir, err);
  if (!repo) return false;
  git_remote* remote = nullptr;
  if (git_remote_lookup(&remote, repo.get(), "origin") != 0) {
    *err = "no 'origin' remote";
    return false;
  }
  git_fetch_options opts = GIT_FETCH_OPTIONS_INIT;
  opts.prune = GIT_FETCH_NO_PRUNE;
  int rc = git_remote_fetch(remote, nullptr, &opts, nullptr);
  if (rc != 0) *err = libgit2_error("fetch from origin failed");
  git_remote_free(remote);
  return rc == 0;
}

bool new_commits(const std::string& dir, const std::string& branch, const std::string& cursor,
                 size_t limit, NewCommits* out, std::string* err) {
  *out = NewCommits{};
  Repo repo = open_repo(dir, err);
  if (!repo) return false;
  git_oid tip;
  std::string ref = "refs/remotes/origin/" + branch;
  if (git_reference_name_to_id(&tip, repo.get(), ref.c_str()) != 0) {
    out->missing = true;
    return true;
  }
  git_oid base;
  bool have_base = !cursor.empty() && git_oid_fromstrn(&base, cursor.data(), cursor.size()) == 0;
  if (have_base && git_oid_equal(&base, &tip)) return true;
  if (have_base && git_graph_descendant_of(repo.get(), &tip, &base) != 1) {
    out->rewritten = true;
    have_base = false;
  }
  if (!have_base) {
    out->commits.push_back(oid_text(&tip));
    return true;
  }
  git_revwalk* walk = nullptr;
  if (git_revwalk_new(&walk, repo.get()) != 0) {
    *err = libgit2_error("revwalk");
    return false;
  }
  git_revwalk_sorting(walk, GIT_SORT_TOPOLOGICAL | GIT_SORT_REVERSE);
  git_revwalk_push(walk, &tip);
  git_revwalk_hide(walk, &base);
  git_oid oid;
  while (git_revwalk_next(&oid, walk) == 0) {
    out->commits.push_back(oid_text(&oid));
  }
  git_revwalk_free(walk);
  // A huge jump (a long-lived branch merged in) is capped to its newest commits.
  if (out->commits.size() > limit) {
    out->commits.erase(out->commits.begin(), out->commits.end() - static_cast<long>(limit));
  }
  return true;
}

}  // namespace simpleci::observer
