#include "observer/git_watch.h"


#include "git/git.h"

#include <fnmatch.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string_view>

#include <spdlog/spdlog.h>

#include "messages/validate.h"

namespace simpleci::observer {

using git::Repo;

bool is_pattern(const std::string& s) { return s.find_first_of("*?[") != std::string::npos; }

bool is_valid_branch_pattern(const std::string& s) {
  std::string plain = s;
  std::replace_if(plain.begin(), plain.end(), [](char c) { return c == '*' || c == '?' || c == '['; }, 'x');
  return !s.empty() && is_valid_branch(plain);
}

bool branch_matches(const std::vector<std::string>& patterns, const std::string& branch) {
  return std::any_of(patterns.begin(), patterns.end(), [&](const std::string& p) {
    return is_pattern(p) ? fnmatch(p.c_str(), branch.c_str(), FNM_PATHNAME) == 0 : p == branch;
  });
}

bool init_clone(const std::string& dir, const std::string& url, std::string* err) {
  std::error_code ec;
  Repo repo;
  if (std::filesystem::exists(std::filesystem::path(dir) / ".git", ec)) {
    repo = git::open(dir, err);
    if (!repo) return false;
  } else {
    git_repository* r = nullptr;
    if (git_repository_init(&r, dir.c_str(), 0) != 0) {
      *err = git::error("cannot make a repository in " + dir);
      return false;
    }
    repo.reset(r);
  }
  std::string have, ignored;
  if (git::origin_url(repo.get(), &have, &ignored) && have == url) return true;
  git_config* cfg = nullptr;
  const bool ok = git_repository_config(&cfg, repo.get()) == 0 &&
                  git_config_set_string(cfg, "remote.origin.url", url.c_str()) == 0;
  if (!ok) *err = git::error("cannot set the origin of " + dir);
  git_config_free(cfg);
  return ok;
}

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

namespace {
std::string tracking(const std::string& branch) { return "refs/remotes/origin/" + branch; }
}  // namespace

bool GitWatch::open(std::string* err) {
  if (clone_) return true;
  clone_ = git::open(dir_, err);
  if (!clone_) return false;
  std::string url;
  if (!git::origin_url(clone_.get(), &url, err)) {
    clone_.reset();
    return false;
  }
  // A folder that does not open as a repository is left to the transport, which says why.
  const std::string path = read_local_ ? git::local_path(url, dir_) : "";
  std::string ignored;
  origin_ = path.empty() ? nullptr : git::open(path, &ignored);
  return true;
}

bool GitWatch::origin_tips(const std::vector<std::string>& branches, git::Tips* tips, std::string* err) {
  if (!origin_) return git::ls_origin(clone_.get(), branches, tips, err);
  tips->clear();
  for (const auto& b : branches) {
    git_oid id;
    if (git::ref_id(origin_.get(), "refs/heads/" + b, &id)) (*tips)[b] = id;
  }
  // A branch missing from a folder that is no longer there is origin gone, not a branch.
  std::error_code ec;
  const char* path = git_repository_path(origin_.get());
  if (tips->size() < branches.size() && !std::filesystem::exists(path, ec)) {
    *err = std::string("cannot read origin: ") + path + " is gone";
    return false;
  }
  return true;
}

bool GitWatch::moved(const git::Tips& tips) const {
  for (const auto& [branch, id] : tips) {
    git_oid have;
    if (!git::ref_id(clone_.get(), tracking(branch), &have) || !git_oid_equal(&have, &id)) return true;
  }
  return false;
}

bool GitWatch::fetch(std::string* err) {
  if (!git::fetch_origin(clone_.get(), err)) return false;
  ++fetches_;
  // merge_small_packs wants no other handle on the clone (one would look for removed packs):
  // it is opened again by the next poll, which after a fetch is rare enough not to matter.
  clone_.reset();
  std::string merge_err;  // the fetch worked; a failed merge is tried again after the next one
  if (git::merge_small_packs(dir_, git::kPackLimit, &merge_err) < 0) {
    spdlog::warn("cannot merge the packs of {}: {}", dir_, merge_err);
  }
  return true;
}

bool GitWatch::fetch_if_moved(std::string* err) {
  if (moved(tips_) && !fetch(err)) {
    clone_.reset();
    origin_.reset();
    return false;
  }
  return true;
}

bool GitWatch::update(const std::vector<std::string>& branches, std::string* err) {
  git::Tips tips;
  if (!open(err) || !origin_tips(branches, &tips, err)) {
    clone_.reset();
    origin_.reset();
    return false;
  }
  tips_ = std::move(tips);
  return fetch_if_moved(err);
}

namespace {

constexpr std::string_view kHeads = "refs/heads/";

// Every branch of a repository on this machine, and the branch its HEAD names ("" if none).
bool local_branches(git_repository* repo, git::Tips* tips, std::string* head, std::string* err) {
  const char* path = git_repository_path(repo);
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    *err = std::string("cannot read origin: ") + path + " is gone";
    return false;
  }
  git_reference_iterator* it = nullptr;
  if (git_reference_iterator_new(&it, repo) != 0) {
    *err = git::error("cannot list origin's branches");
    return false;
  }
  git_reference* ref = nullptr;
  while (git_reference_next(&ref, it) == 0) {
    const std::string_view name = git_reference_name(ref);
    if (name.starts_with(kHeads) && git_reference_type(ref) == GIT_REFERENCE_DIRECT) {
      (*tips)[std::string(name.substr(kHeads.size()))] = *git_reference_target(ref);
    }
    git_reference_free(ref);
  }
  git_reference_iterator_free(it);
  git_reference* h = nullptr;
  if (git_reference_lookup(&h, repo, "HEAD") == 0 && git_reference_type(h) == GIT_REFERENCE_SYMBOLIC) {
    const std::string_view target = git_reference_symbolic_target(h);
    if (target.starts_with(kHeads)) *head = target.substr(kHeads.size());
  }
  git_reference_free(h);
  return true;
}


}  // namespace

bool GitWatch::all_origin_tips(git::Tips* tips, std::string* head, std::string* err) {
  tips->clear();
  head->clear();
  return origin_ ? local_branches(origin_.get(), tips, head, err) : git::ls_origin_all(clone_.get(), tips, head, err);
}

bool GitWatch::update_matching(const std::vector<std::string>& patterns, std::string* err) {
  git::Tips all;
  std::string head;
  if (!open(err) || !all_origin_tips(&all, &head, err)) {
    clone_.reset();
    origin_.reset();
    return false;
  }
  tips_.clear();
  for (const auto& [branch, id] : all) {
    if (patterns.empty() ? branch == head : branch_matches(patterns, branch)) tips_[branch] = id;
  }
  return fetch_if_moved(err);
}

bool GitWatch::jobs(const std::string& commit, git::JobsFolder* out, std::string* err) {
  git_oid id;
  if (git_oid_fromstrn(&id, commit.data(), commit.size()) != 0) {
    *err = "not a commit id: " + commit;
    return false;
  }
  return open(err) && git::read_jobs_folder(clone_.get(), id, out, err);
}

bool GitWatch::new_commits(const std::string& branch, const std::string& cursor, size_t limit, NewCommits* out,
                           std::string* err) {
  *out = NewCommits{};
  if (!open(err)) return false;
  git_repository* repo = clone_.get();
  git_oid tip;
  if (!git::ref_id(repo, tracking(branch), &tip)) {
    out->missing = true;
    return true;
  }
  git_oid base;
  bool have_base = !cursor.empty() && git_oid_fromstrn(&base, cursor.data(), cursor.size()) == 0;
  if (have_base && git_oid_equal(&base, &tip)) return true;
  if (have_base && git_graph_descendant_of(repo, &tip, &base) != 1) {
    out->rewritten = true;
    have_base = false;
  }
  if (!have_base) {
    out->commits.push_back(git::oid_text(&tip));
    return true;
  }
  git_revwalk* walk = nullptr;
  if (git_revwalk_new(&walk, repo) != 0) {
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
