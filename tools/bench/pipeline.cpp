#include "tools/bench/pipeline.h"

#include <git2.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>

#include <nlohmann/json.hpp>

#include "tools/bench/http.h"

namespace simpleci::bench {

fs::path bin_folder(const std::string& bin_dir) { return bin_dir.empty() ? self_dir() : fs::path(bin_dir); }

std::string exe(const std::string& bin_dir, const std::string& name) { return (bin_folder(bin_dir) / name).string(); }

bool make_repo(const fs::path& dir, Repo* r) {
  r->origin = dir / "origin.git";
  r->work = dir / "work";
  fs::create_directories(r->work / ".simpleci");
  run(git_argv(dir, {"init", "-q", "--bare", "-b", "main", r->origin.string()}));
  run(git_argv(r->work, {"init", "-q", "-b", "main"}));
  std::ofstream(r->test()) << "#!/bin/sh\nexit 0\n";
  fs::permissions(r->test(), fs::perms::owner_exec, fs::perm_options::add);
  std::ofstream(r->work / "counter.txt") << "0\n";
  if (run(git_argv(r->work, {"add", "-A"})) != 0 || run(git_argv(r->work, {"commit", "-q", "-m", "first"})) != 0 ||
      run(git_argv(r->work, {"remote", "add", "origin", r->origin.string()})) != 0 ||
      run(git_argv(r->work, {"push", "-q", "origin", "main"})) != 0) {
    std::fprintf(stderr, "simpleci-bench: cannot create the repositories in %s\n", dir.c_str());
    return false;
  }
  return true;
}

namespace {

template <auto Free>
struct Freer {
  template <class T>
  void operator()(T* p) const {
    Free(p);
  }
};
template <class T, auto Free>
using Owned = std::unique_ptr<T, Freer<Free>>;

// One commit on top of HEAD whose tree is HEAD's with counter.txt set to text; "" on failure.
std::string commit_counter(git_repository* repo, const git_signature* sig, const std::string& text) {
  git_oid head_id, blob_id, tree_id, new_id;
  git_commit* head_raw = nullptr;
  git_tree* tree_raw = nullptr;
  git_treebuilder* tb_raw = nullptr;
  if (git_reference_name_to_id(&head_id, repo, "HEAD") != 0 || git_commit_lookup(&head_raw, repo, &head_id) != 0) return "";
  Owned<git_commit, git_commit_free> head(head_raw);
  if (git_commit_tree(&tree_raw, head.get()) != 0) return "";
  Owned<git_tree, git_tree_free> tree(tree_raw);
  if (git_blob_create_from_buffer(&blob_id, repo, text.data(), text.size()) != 0 ||
      git_treebuilder_new(&tb_raw, repo, tree.get()) != 0) {
    return "";
  }
  Owned<git_treebuilder, git_treebuilder_free> tb(tb_raw);
  if (git_treebuilder_insert(nullptr, tb.get(), "counter.txt", &blob_id, GIT_FILEMODE_BLOB) != 0 ||
      git_treebuilder_write(&tree_id, tb.get()) != 0) {
    return "";
  }
  git_tree* new_tree_raw = nullptr;
  if (git_tree_lookup(&new_tree_raw, repo, &tree_id) != 0) return "";
  Owned<git_tree, git_tree_free> new_tree(new_tree_raw);
  const git_commit* parents[] = {head.get()};
  if (git_commit_create(&new_id, repo, "HEAD", sig, sig, nullptr, text.c_str(), new_tree.get(), 1, parents) != 0) return "";
  char hex[GIT_OID_HEXSZ + 1];
  git_oid_tostr(hex, sizeof hex, &new_id);
  return hex;
}

}  // namespace

std::vector<std::string> add_commits(const fs::path& work, int n, const std::string& tag) {
  git_libgit2_init();
  std::vector<std::string> ids;
  git_repository* repo_raw = nullptr;
  git_signature* sig_raw = nullptr;
  if (git_repository_open(&repo_raw, work.c_str()) == 0 && git_signature_now(&sig_raw, "bench", "bench@simpleci.invalid") == 0) {
    Owned<git_repository, git_repository_free> repo(repo_raw);
    Owned<git_signature, git_signature_free> sig(sig_raw);
    for (int i = 0; i < n; ++i) {
      std::string id = commit_counter(repo.get(), sig.get(), tag + " " + std::to_string(i) + "\n");
      if (id.empty()) break;
      ids.push_back(id);
    }
  } else {
    git_repository_free(repo_raw);
  }
  if (ids.size() != static_cast<size_t>(n)) {
    const git_error* e = git_error_last();
    std::fprintf(stderr, "simpleci-bench: cannot add commits in %s: %s\n", work.c_str(), e ? e->message : "?");
    ids.clear();
  }
  git_libgit2_shutdown();
  return ids;
}

bool clone(const fs::path& origin, const fs::path& dir) {
  if (run({"git", "clone", "-q", origin.string(), dir.string()}) == 0) return true;
  std::fprintf(stderr, "simpleci-bench: cannot clone %s into %s\n", origin.c_str(), dir.c_str());
  return false;
}

bool Pipeline::has_result(const std::string& commit) const { return fs::exists(results() / (commit + ".json")); }

bool Pipeline::start_dispatcher() {
  endpoint = bench::start_dispatcher(dir, exe(bin_dir, "simpleci-dispatcher"), &dispatcher);
  if (endpoint.empty()) dispatcher = -1;
  return !endpoint.empty();
}

void Pipeline::start_runner(const fs::path& clone_dir, const std::string& name, int slots) {
  runners.push_back(start({exe(bin_dir, "simpleci-runner"), "--dispatcher", endpoint, "--name", name, "--jobs",
                           std::to_string(slots), "--log-dir", (dir / "logs").string(), "--log-level", "warn",
                           clone_dir.string()},
                          dir / (name + ".out")));
}

void Pipeline::start_observer(const fs::path& clone_dir, int poll_ms) {
  observer = start({exe(bin_dir, "simpleci-observer"), "--dispatcher", endpoint, "--poll-ms", std::to_string(poll_ms),
                    "--log-dir", (dir / "logs").string(), "--log-level", "warn", clone_dir.string()},
                   dir / "observer.out");
}

int Pipeline::registered_runners() const {
  std::string out;
  if (run({exe(bin_dir, "simpleci"), "status", "--json", "--dispatcher", endpoint, "--timeout-ms", "2000"}, &out) != 0) {
    return -1;
  }
  const nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
  if (!j.is_object() || !j.contains("runners") || !j["runners"].is_array()) return -1;
  return static_cast<int>(j["runners"].size());
}

bool Pipeline::wait_runners(size_t n, std::chrono::milliseconds timeout) const {
  int seen = -1;
  if (wait_for(
          [&] {
            seen = registered_runners();
            return seen >= static_cast<int>(n);
          },
          timeout, std::chrono::milliseconds(50))) {
    return true;
  }
  std::fprintf(stderr, "simpleci-bench: %d of %zu runners registered within %lld ms (see %s)\n", seen, n,
               static_cast<long long>(timeout.count()), dir.c_str());
  return false;
}

bool Pipeline::wait_result(const std::string& commit, std::chrono::milliseconds timeout) const {
  if (wait_for([&] { return has_result(commit); }, timeout)) return true;
  std::fprintf(stderr, "simpleci-bench: no result for %s within %lld ms (see %s)\n", commit.c_str(),
               static_cast<long long>(timeout.count()), dir.c_str());
  return false;
}

bool Pipeline::start_web(int port) {
  web = start({exe(bin_dir, "simpleci-web"), "--dispatcher", endpoint, "--listen", "127.0.0.1:" + std::to_string(port),
               "--log-dir", (dir / "logs").string(), "--log-level", "warn"},
              dir / "web.out");
  const bool up = wait_for(
      [&] {
        std::string body;
        return http_get(port, "/api/status", 2000, &body) == 200;
      },
      std::chrono::seconds(10), std::chrono::milliseconds(50));
  if (!up) std::fprintf(stderr, "simpleci-bench: simpleci-web did not answer on port %d (see %s)\n", port, dir.c_str());
  return up;
}

bool start_pipeline(Pipeline& p, const Repo& repo, int runners, int slots, int poll_ms) {
  if (!p.start_dispatcher()) return false;
  for (int k = 0; k < runners; ++k) {
    const fs::path c = p.dir / ("runner-" + std::to_string(k));
    if (!clone(repo.origin, c)) return false;
    p.start_runner(c, "bench-" + std::to_string(k), slots);
  }
  const fs::path oc = p.dir / "observer-clone";
  if (!clone(repo.origin, oc)) return false;
  p.start_observer(oc, poll_ms);
  return p.wait_runners(static_cast<size_t>(runners), std::chrono::seconds(30)) &&
         p.wait_result(git_head(repo.work), std::chrono::seconds(30));
}

void Pipeline::stop_all() {
  stop(web);
  stop(observer);
  for (pid_t r : runners) stop(r);
  stop(dispatcher);
  web = observer = dispatcher = -1;
  runners.clear();
}

TempDirGuard::~TempDirGuard() {
  if (path.empty()) return;
  if (keep) {
    std::fprintf(stderr, "simpleci-bench: kept %s\n", path.c_str());
    return;
  }
  std::error_code ec;
  fs::remove_all(path, ec);
}

bool open_run(const BinDir& o, TempDirGuard* tmp, Pipeline* p) {
  for (const char* name : {"simpleci-dispatcher", "simpleci-runner", "simpleci-observer", "simpleci"}) {
    if (::access(exe(o.bin, name).c_str(), X_OK) != 0) {
      std::fprintf(stderr, "simpleci-bench: no executable %s (--bin)\n", exe(o.bin, name).c_str());
      return false;
    }
  }
  tmp->path = make_temp_dir(o.work_dir);
  tmp->keep = o.keep;
  p->bin_dir = o.bin;
  p->dir = tmp->path;
  if (tmp->path.empty()) std::fprintf(stderr, "simpleci-bench: cannot create a temporary folder\n");
  return !tmp->path.empty();
}

double median(const std::vector<double>& v) { return percentile(v, 50); }

double rounded(double v, int digits) {
  const double scale = std::pow(10.0, digits);
  return std::round(v * scale) / scale;
}

}  // namespace simpleci::bench
