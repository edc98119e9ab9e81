#include "git/git.h"

#include "git/auth.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string_view>
#include <system_error>
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

namespace {

struct RemoteCloser {
  void operator()(git_remote* r) const { git_remote_free(r); }
};
using Remote = std::unique_ptr<git_remote, RemoteCloser>;

// origin as an in-memory remote (no name: nothing is written to the config, and no leaking
// lookup runs; see origin_url in git.h). insteadOf is applied by origin_url already.
Remote origin_remote(git_repository* repo, git_config* cfg, std::string* url_out, std::string* err) {
  std::string& url = *url_out;
  if (!origin_url(cfg, &url, err)) return nullptr;
  git_remote_create_options create = GIT_REMOTE_CREATE_OPTIONS_INIT;
  create.repository = repo;
  create.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
  git_remote* remote = nullptr;
  if (git_remote_create_with_opts(&remote, url.c_str(), &create) != 0) {
    *err = error("bad origin URL " + url);
    return nullptr;
  }
  return Remote(remote);
}

// Fetches refspecs from origin.
bool fetch_refspecs(git_repository* repo, git_config* cfg, std::vector<std::string> specs, std::string* err) {
  std::string url;
  Remote remote = origin_remote(repo, cfg, &url, err);
  if (!remote) return false;
  std::vector<char*> spec_ptrs;
  for (auto& s : specs) spec_ptrs.push_back(s.data());
  git_strarray refspecs{spec_ptrs.data(), spec_ptrs.size()};
  git_fetch_options opts = GIT_FETCH_OPTIONS_INIT;
  opts.update_fetchhead = 0;
  Session auth(url);
  auth.apply(&opts.callbacks);
  if (git_remote_fetch(remote.get(), &refspecs, &opts, nullptr) != 0) {
    *err = auth.failure().empty() ? error("fetch from origin failed") : auth.failure();
    return false;
  }
  return true;
}

}  // namespace

bool fetch_origin(git_repository* repo, std::string* err) {
  Config cfg = snapshot(repo, err);
  return cfg && fetch_refspecs(repo, cfg.get(), origin_refspecs(cfg.get()), err);
}

bool ls_origin_all(git_repository* repo, Tips* tips, std::string* head, std::string* err) {
  constexpr std::string_view kHeads = "refs/heads/";
  tips->clear();
  head->clear();
  Config cfg = snapshot(repo, err);
  std::string url;
  Remote remote = cfg ? origin_remote(repo, cfg.get(), &url, err) : nullptr;
  if (!remote) return false;
  git_remote_callbacks callbacks = GIT_REMOTE_CALLBACKS_INIT;
  Session auth(url);
  auth.apply(&callbacks);
  git_proxy_options proxy = GIT_PROXY_OPTIONS_INIT;
  if (git_remote_connect(remote.get(), GIT_DIRECTION_FETCH, &callbacks, &proxy, nullptr) != 0) {
    *err = auth.failure().empty() ? error("cannot reach origin") : auth.failure();
    return false;
  }
  const git_remote_head** heads = nullptr;
  size_t n = 0;
  const bool ok = git_remote_ls(&heads, &n, remote.get()) == 0;
  if (!ok) *err = error("cannot list origin's refs");
  for (size_t i = 0; ok && i < n; ++i) {
    const std::string_view name(heads[i]->name);
    if (name.starts_with(kHeads)) (*tips)[std::string(name.substr(kHeads.size()))] = heads[i]->oid;
    const std::string_view target(heads[i]->symref_target ? heads[i]->symref_target : "");
    if (name == "HEAD" && target.starts_with(kHeads)) *head = target.substr(kHeads.size());
  }
  git_remote_disconnect(remote.get());
  return ok;
}

bool ls_origin(git_repository* repo, const std::vector<std::string>& branches, Tips* tips, std::string* err) {
  tips->clear();
  Tips all;
  std::string head;
  if (!ls_origin_all(repo, &all, &head, err)) return false;
  for (const std::string& b : branches) {
    if (auto it = all.find(b); it != all.end()) (*tips)[b] = it->second;
  }
  return true;
}

std::string local_path(const std::string& url, const std::string& base_dir) {
  namespace fs = std::filesystem;
  constexpr std::string_view kFile = "file://";
  if (std::string_view(url).starts_with(kFile)) return url.substr(kFile.size());
  if (url.empty() || url.find("://") != std::string::npos) return "";
  // git's rule for scp-like syntax: a colon before the first slash means host:path.
  const size_t colon = url.find(':'), slash = url.find('/');
  if (colon != std::string::npos && (slash == std::string::npos || colon < slash)) return "";
  const fs::path p(url);
  return (p.is_absolute() ? p : fs::path(base_dir) / p).lexically_normal().string();
}

bool ref_id(git_repository* repo, const std::string& name, git_oid* out) {
  return git_reference_name_to_id(out, repo, name.c_str()) == 0;
}


bool fetch_branch(git_repository* repo, const std::string& branch, std::string* err) {
  Config cfg = snapshot(repo, err);
  return cfg && fetch_refspecs(repo, cfg.get(), {"+refs/heads/" + branch + ":refs/remotes/origin/" + branch}, err);
}

namespace {

std::filesystem::path fs_idx(std::filesystem::path pack) { return pack.replace_extension(".idx"); }

struct Pack {
  std::filesystem::path pack;  // objects/pack/pack-<name>.pack; its index is beside it
  uintmax_t size = 0;
};

// The packs of objects/pack that have an index and no .keep file.
std::vector<Pack> list_packs(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  std::vector<Pack> packs;
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const fs::path& p = it->path();
    if (p.extension() != ".pack") continue;
    std::error_code e1, e2;
    if (!fs::exists(fs::path(p).replace_extension(".idx"), e1) || fs::exists(fs::path(p).replace_extension(".keep"), e2)) {
      continue;
    }
    packs.push_back({p, it->file_size(e1)});
  }
  return packs;
}

uint32_t be32(const unsigned char* b) {
  return uint32_t{b[0]} << 24 | uint32_t{b[1]} << 16 | uint32_t{b[2]} << 8 | uint32_t{b[3]};
}

// The object ids a version-2 pack index lists: magic "\377tOc", version 2, 256 cumulative
// counts (the last is the number of objects), then the sorted 20-byte ids.
bool index_ids(const std::filesystem::path& idx, std::vector<git_oid>* ids, std::string* err) {
  std::ifstream in(idx, std::ios::binary);
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto* b = reinterpret_cast<const unsigned char*>(data.data());
  constexpr size_t kHeader = 8, kFanout = 256 * 4;
  if (data.size() < kHeader + kFanout || data.compare(0, 4, "\377tOc") != 0 || be32(b + 4) != 2) {
    *err = "not a version 2 pack index: " + idx.string();
    return false;
  }
  const size_t n = be32(b + kHeader + kFanout - 4);
  if (data.size() < kHeader + kFanout + n * GIT_OID_RAWSZ) {
    *err = "truncated pack index: " + idx.string();
    return false;
  }
  for (size_t i = 0; i < n; ++i) {
    git_oid id;
    git_oid_fromraw(&id, b + kHeader + kFanout + i * GIT_OID_RAWSZ);
    ids->push_back(id);
  }
  return true;
}

// Writes one pack holding every object of packs into dir; its file name in *name.
bool write_merged(git_repository* repo, const std::vector<Pack>& packs, const std::filesystem::path& dir,
                  std::string* name, std::string* err) {
  git_packbuilder* pb = nullptr;
  if (git_packbuilder_new(&pb, repo) != 0) {
    *err = error("cannot start a pack");
    return false;
  }
  git_packbuilder_set_threads(pb, 1);
  bool ok = true;
  for (size_t i = 0; ok && i < packs.size(); ++i) {
    std::vector<git_oid> ids;
    ok = index_ids(fs_idx(packs[i].pack), &ids, err);
    for (size_t k = 0; ok && k < ids.size(); ++k) {
      if (git_packbuilder_insert(pb, &ids[k], nullptr) != 0) {
        *err = error("cannot add " + oid_text(&ids[k]) + " to the merged pack");
        ok = false;
      }
    }
  }
  if (ok && git_packbuilder_write(pb, dir.c_str(), 0, nullptr, nullptr) != 0) {
    *err = error("cannot write the merged pack");
    ok = false;
  }
  if (ok) *name = std::string("pack-") + git_packbuilder_name(pb) + ".pack";
  git_packbuilder_free(pb);
  return ok;
}

}  // namespace

int merge_small_packs(const std::string& repo_dir, size_t max_packs, std::string* err) {
  namespace fs = std::filesystem;
  Repo repo = open(repo_dir, err);
  if (!repo) return -1;
  const fs::path dir = fs::path(git_repository_path(repo.get())) / "objects" / "pack";
  std::vector<Pack> packs = list_packs(dir);
  if (packs.size() <= max_packs) return 0;
  // The largest stays as it is: merging into it would rewrite the whole history every time.
  std::sort(packs.begin(), packs.end(), [](const Pack& a, const Pack& b) { return a.size > b.size; });
  packs.erase(packs.begin());
  std::string merged;
  if (!write_merged(repo.get(), packs, dir, &merged, err)) return -1;
  for (const Pack& p : packs) {
    if (p.pack.filename() == merged) continue;
    std::error_code ec;
    fs::remove(fs_idx(p.pack), ec);  // the index first: a pack without one is ignored
    fs::remove(p.pack, ec);
  }
  return static_cast<int>(packs.size());
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
