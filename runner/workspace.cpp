#include "runner/workspace.h"

#include <filesystem>
#include <memory>

#include <spdlog/spdlog.h>

#include "git/auth.h"

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
  git::Session auth(url);  // the key, host keys and tokens of --ssh-key etc. (git/auth.h)
  auth.apply(&opts.fetch_opts.callbacks);
  if (git_clone(&r, url.c_str(), dir.c_str(), &opts) != 0) {
    *err = auth.failure().empty() ? git::error("cannot clone " + url + " into " + dir) : auth.failure();
    return false;
  }
  git_repository_free(r);
  return true;
}

// Where a folder is made before it takes its name: a leading '.' keeps it clear of every
// repository and slot name, and a folder killed half-made is never mistaken for a clone.
fs::path part_of(const fs::path& dir) { return dir.parent_path() / ("." + dir.filename().string() + ".part"); }

std::string folder_of(git_repository* repo) {
  const char* dir = git_repository_workdir(repo);
  return dir ? dir : git_repository_path(repo);
}

}  // namespace

bool init_clone(const std::string& dir, const std::string& url, std::string* err) {
  const fs::path part = part_of(fs::path(dir).lexically_normal());
  std::error_code ec;
  fs::remove_all(part, ec);
  git_repository* r = nullptr;
  git_repository_init_options opts = GIT_REPOSITORY_INIT_OPTIONS_INIT;
  opts.flags = GIT_REPOSITORY_INIT_MKPATH;
  if (git_repository_init_ext(&r, part.c_str(), &opts) != 0) {
    *err = git::error("cannot make a repository in " + part.string());
    return false;
  }
  Repo repo(r);
  git_config* cfg = nullptr;
  int rc = git_repository_config(&cfg, r);
  if (rc == 0) rc = git_config_set_string(cfg, "remote.origin.url", url.c_str());
  if (rc == 0) rc = git_config_set_string(cfg, "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*");
  git_config_free(cfg);
  repo.reset();
  if (rc != 0) {
    *err = git::error("cannot set the origin of " + part.string());
    fs::remove_all(part, ec);
    return false;
  }
  fs::rename(part, dir, ec);
  if (ec) {
    *err = "cannot rename " + part.string() + " to " + dir + ": " + ec.message();
    fs::remove_all(part, ec);
    return false;
  }
  return true;
}

bool point_origin_at(git_repository* repo, const std::string& url, std::string* was, std::string* err) {
  git_config* cfg = nullptr;
  if (git_repository_config(&cfg, repo) != 0) {
    *err = git::error("cannot read the config of " + folder_of(repo));
    return false;
  }
  git_buf buf = GIT_BUF_INIT;
  const int got = git_config_get_string_buf(&buf, cfg, "remote.origin.url");
  *was = got == 0 ? std::string(buf.ptr, buf.size) : "";
  git_buf_dispose(&buf);
  int rc = got == 0 || got == GIT_ENOTFOUND ? 0 : got;
  if (rc == 0 && *was != url) rc = git_config_set_string(cfg, "remote.origin.url", url.c_str());
  git_config_free(cfg);
  if (rc != 0) {
    *err = git::error("cannot set the origin of " + folder_of(repo));
    return false;
  }
  return true;
}

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
    std::string url = url_;
    if (url.empty()) {
      Repo main = git::open(clone_dir_, err);
      if (!main || !git::origin_url(main.get(), &url, err)) return nullptr;
    }
    fs::remove_all(*dir, ec);
    fs::create_directories(fs::path(*dir).parent_path(), ec);
    // Not git_clone: the slot is filled by the fetch prepare() makes, the way every fetch is.
    if (!init_clone(*dir, url, err)) return nullptr;
  }
  Repo repo = git::open(*dir, err);
  if (!repo) return nullptr;
  if (!url_.empty()) {
    std::string was;
    if (!point_origin_at(repo.get(), url_, &was, err)) return nullptr;
    if (was != url_) spdlog::info("{}: origin was '{}', now {}", *dir, was, url_);
  }
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

RepoWorkspaces::RepoWorkspaces(std::string clone_dir, std::string cache_dir) : cache_dir_(std::move(cache_dir)) {
  if (!clone_dir.empty()) unnamed_ = std::make_shared<GitWorkspace>(std::move(clone_dir));
}

std::shared_ptr<GitWorkspace> RepoWorkspaces::pick(const Checkout& c, std::string* err) {
  if (c.repo.empty()) {
    if (!unnamed_) *err = "this runner does not serve the unnamed repository (it was started without CLONE_DIR)";
    return unnamed_;
  }
  if (cache_dir_.empty()) {
    *err = "this runner does not serve repository " + c.repo + " (it was started without --cache DIR)";
    return nullptr;
  }
  if (c.url.empty()) {
    *err = "no URL for repository " + c.repo;
    return nullptr;
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = named_.find(c.repo); it != named_.end() && it->second->url() == c.url) return it->second;
  const std::string dir = (fs::path(cache_dir_) / c.repo).string();
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    spdlog::info("repository {}: making its clone {} (origin {})", c.repo, dir, c.url);
    if (!init_clone(dir, c.url, err)) return nullptr;
  }
  return named_[c.repo] = std::make_shared<GitWorkspace>(dir, c.url);
}

Prepared RepoWorkspaces::prepare(int slot, const Checkout& c, std::string* workdir, std::string* err) {
  const std::shared_ptr<GitWorkspace> ws = pick(c, err);
  if (!ws) return Prepared::kFailed;
  const Prepared p = ws->prepare(slot, c.commit, c.branch, workdir, err);
  if (p != Prepared::kReady && !c.repo.empty()) *err = "repository " + c.repo + " (" + c.url + "): " + *err;
  return p;
}

}  // namespace simpleci::runner
