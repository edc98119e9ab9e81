#include "git/git.h"

#include <filesystem>
#include <string_view>
#include <vector>

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

namespace {

struct ConfigCloser {
  void operator()(git_config* c) const { git_config_free(c); }
};
using Config = std::unique_ptr<git_config, ConfigCloser>;

Config snapshot(git_repository* repo, std::string* err) {
  git_config* cfg = nullptr;
  if (git_repository_config_snapshot(&cfg, repo) != 0) {
    *err = error("cannot read the repository's config");
    return nullptr;
  }
  return Config(cfg);
}

// git's url.<base>.insteadOf: the longest configured prefix of url is replaced by its base.
// Config names come back with the section and key lower-cased; the base keeps its case.
std::string apply_instead_of(git_config* cfg, const std::string& url) {
  constexpr std::string_view kHead = "url.", kTail = ".insteadof";
  git_config_iterator* it = nullptr;
  if (git_config_iterator_new(&it, cfg) != 0) return url;
  std::string best_base;
  size_t best_len = 0;
  git_config_entry* e = nullptr;
  while (git_config_next(&e, it) == 0) {
    std::string_view name(e->name), prefix(e->value ? e->value : "");
    if (name.size() <= kHead.size() + kTail.size() || !name.starts_with(kHead) || !name.ends_with(kTail)) continue;
    if (prefix.empty() || prefix.size() <= best_len || !std::string_view(url).starts_with(prefix)) continue;
    best_len = prefix.size();
    best_base = name.substr(kHead.size(), name.size() - kHead.size() - kTail.size());
  }
  git_config_iterator_free(it);
  return best_len == 0 ? url : best_base + url.substr(best_len);
}

bool origin_url(git_config* cfg, std::string* url, std::string* err) {
  git_buf buf = GIT_BUF_INIT;
  if (git_config_get_string_buf(&buf, cfg, "remote.origin.url") != 0) {
    *err = "the repository has no 'origin' remote";
    return false;
  }
  *url = apply_instead_of(cfg, buf.ptr);
  git_buf_dispose(&buf);
  return true;
}

std::vector<std::string> origin_refspecs(git_config* cfg) {
  std::vector<std::string> specs;
  git_config_iterator* it = nullptr;
  if (git_config_multivar_iterator_new(&it, cfg, "remote.origin.fetch", nullptr) == 0) {
    git_config_entry* e = nullptr;
    while (git_config_next(&e, it) == 0) {
      if (e->value && *e->value) specs.emplace_back(e->value);
    }
    git_config_iterator_free(it);
  }
  if (specs.empty()) specs.emplace_back("+refs/heads/*:refs/remotes/origin/*");
  return specs;
}

}  // namespace

bool origin_url(git_repository* repo, std::string* url, std::string* err) {
  Config cfg = snapshot(repo, err);
  return cfg && origin_url(cfg.get(), url, err);
}

std::string with_instead_of(const std::string& url) {
  git_config* cfg = nullptr;
  if (git_config_open_default(&cfg) != 0) return url;
  std::string out = apply_instead_of(cfg, url);
  git_config_free(cfg);
  return out;
}

bool fetch_origin(git_repository* repo, std::string* err) {
  Config cfg = snapshot(repo, err);
  std::string url;
  if (!cfg || !origin_url(cfg.get(), &url, err)) return false;
  std::vector<std::string> specs = origin_refspecs(cfg.get());
  std::vector<char*> spec_ptrs;
  for (auto& s : specs) spec_ptrs.push_back(s.data());
  git_strarray refspecs{spec_ptrs.data(), spec_ptrs.size()};

  git_remote_create_options create = GIT_REMOTE_CREATE_OPTIONS_INIT;
  create.repository = repo;  // no name: in memory only, nothing written to the config
  create.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;  // done above
  git_remote* remote = nullptr;
  if (git_remote_create_with_opts(&remote, url.c_str(), &create) != 0) {
    *err = error("bad origin URL " + url);
    return false;
  }
  git_fetch_options opts = GIT_FETCH_OPTIONS_INIT;
  opts.update_fetchhead = 0;
  int rc = git_remote_fetch(remote, &refspecs, &opts, nullptr);
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
