#include "runner/workspace.h"

#include <filesystem>
#include <memory>

#include <spdlog/spdlog.h>

namespace simpleci::runner {

namespace fs = std::filesystem;

namespace {

using git::Repo;

// git_clone's own "origin" would apply url.insteadOf through libgit2 1.5's leaking regex
// lookup (see git/git.h); callers pass the URL with insteadOf already applied.
int create_origin(git_remote** out, git_repository* repo, const char* name, const char* url, void*) {
  git_remote_create_options opts = GIT_REMOTE_CREATE_OPTIONS_INIT;
  opts.repository = repo;
  opts.name = name;
  opts.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF;
  return git_remote_create_with_opts(out, url, &opts);
}

bool clone(const std::string& url, const std::string& dir, std::string* err) {
  git_repository* r = nullptr;
  git_clone_options opts = GIT_CLONE_OPTIONS_INIT;
  opts.remote_cb = create_origin;
  opts.fetch_opts.update_fetchhead = 0;
  if (git_clone(&r, url.c_str(), dir.c_str(), &opts) != 0) {
    *err = git::error("cannot clone " + url + " into " + dir);
    return false;
  }
  git_repository_free(r);
  return true;
}

}  // namespace

bool open_or_clone(const std::string& dir, const std::string& repo_url, std::string* err) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    if (repo_url.empty()) {
      *err = "clone folder does not exist: " + dir + " (give --repo URL to clone it)";
      return false;
    }
    if (!clone(git::with_instead_of(repo_url), dir, err)) return false;
  }
  if (!fs::is_directory(dir, ec)) {
    *err = "not a folder: " + dir;
    return false;
  }
  Repo repo = git::open(dir, err);
  if (!repo) return false;
  if (git_repository_is_bare(repo.get())) {
    *err = "a bare repository cannot run tests: " + dir;
    return false;
  }
  std::string url;
  if (!git::origin_url(repo.get(), &url, err)) {
    *err += ": " + dir;
    return false;
  }
  return true;
}

git_repository* GitWorkspace::slot_repo(int slot, std::string* dir, std::string* err) {
  *dir = clone_dir_;
  if (slot > 0) *dir = (fs::path(clone_dir_) / ".git" / "simpleci" / "slots" / std::to_string(slot)).string();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = open_.find(slot); it != open_.end() && it->second) return it->second.get();
  }
  std::error_code ec;
  if (slot > 0 && !fs::exists(fs::path(*dir) / ".git", ec)) {
    Repo main = git::open(clone_dir_, err);
    std::string url;
    if (!main || !git::origin_url(main.get(), &url, err)) return nullptr;
    fs::remove_all(*dir, ec);
    fs::create_directories(fs::path(*dir).parent_path(), ec);
    if (!clone(url, *dir, err)) return nullptr;
  }
  Repo repo = git::open(*dir, err);
  if (!repo) return nullptr;
  std::lock_guard<std::mutex> lock(mu_);
  return (open_[slot] = std::move(repo)).get();
}

bool GitWorkspace::fetch_commit(git_repository* repo, const git_oid& oid, const std::string& branch,
                                std::string* err) {
  if (!branch.empty()) {
    std::string branch_err;
    git_commit* c = nullptr;
    if (git::fetch_branch(repo, branch, &branch_err) && git_commit_lookup(&c, repo, &oid) == 0) {
      git_commit_free(c);
      return true;
    }
  }
  return git::fetch_origin(repo, err);
}

// A fetch leaves a pack; once too many have piled up they are merged, which needs this
// process's handle closed (it is opened again by the next job).
void GitWorkspace::after_fetch(int slot, const std::string& dir) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    open_.erase(slot);
  }
  std::string merge_err;  // the job can run; a failed merge is tried after the next fetch
  if (git::merge_small_packs(dir, git::kPackLimit, &merge_err) < 0) {
    spdlog::warn("cannot merge the packs of {}: {}", dir, merge_err);
  }
}

Prepared GitWorkspace::prepare(int slot, const std::string& commit, const std::string& branch,
                               std::string* workdir, std::string* err) {
  std::string dir;
  git_repository* repo = slot_repo(slot, &dir, err);
  if (!repo) return Prepared::kFailed;
  git_oid oid;
  if (git_oid_fromstrn(&oid, commit.data(), commit.size()) != 0) {
    *err = "bad commit id " + commit;
    return Prepared::kMissingCommit;
  }
  git_commit* c = nullptr;
  bool fetched = false;
  if (git_commit_lookup(&c, repo, &oid) != 0) {
    if (!fetch_commit(repo, oid, branch, err)) return Prepared::kFailed;
    fetched = true;
    if (git_commit_lookup(&c, repo, &oid) != 0) {
      *err = "commit " + commit + " is not in origin (after fetching it)";
      return Prepared::kMissingCommit;
    }
  }
  git_checkout_options opts = GIT_CHECKOUT_OPTIONS_INIT;
  opts.checkout_strategy = GIT_CHECKOUT_FORCE | GIT_CHECKOUT_REMOVE_UNTRACKED;
  int rc = git_checkout_tree(repo, reinterpret_cast<git_object*>(c), &opts);
  if (rc == 0) rc = git_repository_set_head_detached(repo, &oid);
  git_commit_free(c);
  if (rc != 0) {
    *err = git::error("checkout of " + commit + " failed");
    return Prepared::kFailed;
  }
  *workdir = dir;
  if (fetched) after_fetch(slot, dir);
  return Prepared::kReady;
}

}  // namespace simpleci::runner
