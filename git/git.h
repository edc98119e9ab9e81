// libgit2 helpers shared by the runner and the observer (library simpleci_git; the message
// library itself does not depend on libgit2).
#pragma once

#include <git2.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace simpleci::git {

struct RepoCloser {
  void operator()(git_repository* r) const { git_repository_free(r); }
};
using Repo = std::unique_ptr<git_repository, RepoCloser>;

// "<what>: <libgit2's last error message>".
std::string error(const std::string& what);

// Opens exactly dir (no search upwards); nullptr with "not a git repository: DIR" otherwise.
Repo open(const std::string& dir, std::string* err);

// URL of the "origin" remote as git fetches from it (remote.origin.url with the longest
// matching url.<base>.insteadOf applied); false with *err when there is none.
//
// Neither this nor fetch_origin() calls git_remote_lookup: in libgit2 1.5 every config lookup
// through a regular expression (insteadOf, remote lists, branch upstreams) leaks a pcre2 match
// block per config entry that does not match, which a process polling for months cannot afford.
// Both read the config with plain (regex-free) lookups and iterators instead.
bool origin_url(git_repository* repo, std::string* url, std::string* err);

// url with the user's url.<base>.insteadOf rules (global and system config) applied, as git
// would before cloning it; url itself when none matches or the config cannot be read.
std::string with_instead_of(const std::string& url);

// fetch_origin, fetch_branch and ls_origin authenticate with what set_auth() (git/auth.h) was
// given and check SSH host keys against its known_hosts; when authentication stops them, *err
// is the one line that says why (a refused key or token, an unknown host key, an untrusted
// certificate), which callers report as a setup failure.

// Fetches origin with its configured remote.origin.fetch refspecs (default: every branch into
// refs/remotes/origin/*), through an in-memory remote. Does not write FETCH_HEAD (writing it
// looks up the branch's upstream remote, another leaking lookup); nothing here reads it.
bool fetch_origin(git_repository* repo, std::string* err);

// Fetches only origin's branch (into refs/remotes/origin/<branch>): the objects of one branch,
// not every ref's. branch must be a valid branch name (messages/validate.h).
bool fetch_branch(git_repository* repo, const std::string& branch, std::string* err);

// origin's URL as a folder on this machine when it is one: a path (relative ones from base_dir,
// as git resolves them from the top of the clone) or a file:// URL. "" for any other URL
// (ssh://, https://, git://, scp-like host:path), which only a connection can read.
std::string local_path(const std::string& url, const std::string& base_dir);

// The id the reference `name` (e.g. "refs/heads/main") of repo points at, read from the refs
// on disk on every call: libgit2 keeps no loose ref in memory and re-reads packed-refs when
// its size, inode or mtime changed, so a long-open repository sees every push. False when
// there is no such ref.
bool ref_id(git_repository* repo, const std::string& name, git_oid* out);

// A branch name (without refs/heads/) -> the commit its tip is at.
using Tips = std::map<std::string, git_oid>;

// What `git ls-remote origin` tells of branches: connects to origin, reads its advertised refs
// and disconnects, without negotiating a pack. Branches origin lacks are left out of *tips.
bool ls_origin(git_repository* repo, const std::vector<std::string>& branches, Tips* tips, std::string* err);
// The same for every branch origin has, and the branch origin's HEAD names in *head ("" when
// it names none).
bool ls_origin_all(git_repository* repo, Tips* tips, std::string* head, std::string* err);

// Packs a repository may hold before merge_small_packs() merges them (git's gc.autoPackLimit).
inline constexpr size_t kPackLimit = 50;

// Keeps a repository that is fetched into for months from piling up packs: every fetch leaves
// one, and libgit2 maps each pack's index and searches the packs one after another, so memory
// and lookup time grow with their number. When objects/pack holds more than max_packs packs,
// every pack but the largest (and any with a .keep file) is copied into one new pack, then
// removed: objects never leave the repository, only their container changes, and an old pack is
// removed only once the new one is complete. Returns how many packs were merged (0 when at or
// under the limit); -1 with *err on failure, the repository then being as it was (at worst with
// an unused new pack). Opens repo_dir itself. Call only while this process holds no other handle
// on the repository (a handle opened before would still look for the removed packs) and nothing
// else writes to it.
int merge_small_packs(const std::string& repo_dir, size_t max_packs, std::string* err);

// Removes lock files ("*.lock": index.lock, ref locks) under <repo_dir>/.git that a process
// killed in the middle of git work left behind; they would make every later checkout or fetch
// fail. Call only while nothing else uses the repository (at start-up). Returns how many.
int remove_stale_locks(const std::string& repo_dir);

// 40 hex characters of an object id.
std::string oid_text(const git_oid* oid);

}  // namespace simpleci::git
