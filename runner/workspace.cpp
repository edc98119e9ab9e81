#include "runner/workspace.h"

#include "git/git.h"

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

Prepared GitWorkspace::prepare(int slot, const std::string& commit, std::string* workdir,
                               std::string* err) {
  std::string dir = clone_dir_;
  if (slot > 0) {
    dir = (fs::path(clone_dir_) / ".git" / "simpleci" / "slots" / std::to_string(slot)).string();
    std::error_code ec;
    if (!fs::exists(fs::path(dir) / ".git", ec)) {
      Repo main = git::open(clone_dir_, err);
      std::string url;
      if (!main || !git::origin_url(main.get(), &url, err)) return Prepared::kFailed;
      fs::remove_all(dir, ec);
      fs::create_directories(fs::path(dir).parent_path(), ec);
      if (!clone(url, dir, err)) return Prepared::kFailed;
    }
  }
  Repo repo = git::open(dir, err);
  if (!repo) return Prepared::kFailed;
  git_oid oid;
  if (git_oid_fromstrn(&oid, commit.data(), commit.size()) != 0) {
    *err = "bad commit id " + commit;
    return Prepared::kMissingCommit;
  }
  git_commit* c = nullptr;
  bool fetched = false;
  if (git_commit_lookup(&c, repo.get(), &oid) != 0) {
    if (!git::fetch_origin(repo.get(), err)) return Prepared::kFailed;
    fetched = true;
    if (git_commit_lookup(&c, repo.get(), &oid) != 0) {
      *err = "commit " + commit + " is not in origin (after fetching it)";
      return Prepared::kMissingCommit;
    }
  }
  git_checkout_options opts = GIT_CHECKOUT_OPTIONS_INIT;
  opts.checkout_strategy = GIT_CHECKOUT_FORCE | GIT_CHECKOUT_REMOVE_UNTRACKED;
  int rc = git_checkout_tree(repo.get(), reinterpret_cast<git_object*>(c), &opts);
  if (rc == 0) rc = git_repository_set_head_detached(repo.get(), &oid);
  git_commit_free(c);
  if (rc != 0) {
    *err = git::error("checkout of " + commit + " failed");
    return Prepared::kFailed;
  }
  *workdir = dir;
  if (fetched) {
    repo.reset();  // merge_small_packs must be the only handle on the repository
    std::string merge_err;  // the job can run; a failed merge is tried after the next fetch
    if (git::merge_small_packs(dir, git::kPackLimit, &merge_err) < 0) {
      spdlog::warn("cannot merge the packs of {}: {}", dir, merge_err);
    }
  }
  return Prepared::kReady;
}

}  // namespace simpleci::runner
