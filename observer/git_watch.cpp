#include "observer/git_watch.h"

#include "git/git.h"

#include <memory>

#include <spdlog/spdlog.h>

namespace simpleci::observer {

using git::Repo;

bool check_clone(const std::string& dir, std::string* err) {
  Repo repo = git::open(dir, err);
  if (!repo) return false;
  std::string url;
  if (!git::origin_url(repo.get(), &url, err)) {
    *err = "the clone has no 'origin' remote: " + dir;
    return false;
  }
  return true;
}

std::string current_branch(const std::string& dir, std::string* err) {
  Repo repo = git::open(dir, err);
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
  {
    Repo repo = git::open(dir, err);
    if (!repo || !git::fetch_origin(repo.get(), err)) return false;
  }
  std::string merge_err;  // the fetch worked; a failed merge is tried again after the next one
  if (git::merge_small_packs(dir, git::kPackLimit, &merge_err) < 0) {
    spdlog::warn("cannot merge the packs of {}: {}", dir, merge_err);
  }
  return true;
}

bool new_commits(const std::string& dir, const std::string& branch, const std::string& cursor,
                 size_t limit, NewCommits* out, std::string* err) {
  *out = NewCommits{};
  Repo repo = git::open(dir, err);
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
    out->commits.push_back(git::oid_text(&tip));
    return true;
  }
  git_revwalk* walk = nullptr;
  if (git_revwalk_new(&walk, repo.get()) != 0) {
    *err = git::error("revwalk");
    return false;
  }
  git_revwalk_sorting(walk, GIT_SORT_TOPOLOGICAL | GIT_SORT_REVERSE);
  git_revwalk_push(walk, &tip);
  git_revwalk_hide(walk, &base);
  git_oid oid;
  while (git_revwalk_next(&oid, walk) == 0) {
    out->commits.push_back(git::oid_text(&oid));
  }
  git_revwalk_free(walk);
  // A huge jump (a long-lived branch merged in) is capped to its newest commits.
  if (out->commits.size() > limit) {
    out->commits.erase(out->commits.begin(), out->commits.end() - static_cast<long>(limit));
  }
  return true;
}

}  // namespace simpleci::observer
