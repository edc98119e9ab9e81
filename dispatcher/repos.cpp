// Repositories and labels (docs/MULTI.md): the declared repositories as peers see them, why a
// queued job cannot start anywhere, and the jobs of repositories that are no longer declared.
#include <algorithm>

#include <spdlog/spdlog.h>

#include "dispatcher/dispatcher.h"
#include "messages/validate.h"

namespace simpleci::dispatcher {

bool parse_repo_flags(const std::vector<std::string>& repos, const std::vector<std::string>& limits,
                      std::vector<msg::RepoInfo>* out, std::string* err) {
  out->clear();
  for (const std::string& r : repos) {
    const size_t eq = r.find('=');
    const std::string name = r.substr(0, eq), url = eq == std::string::npos ? "" : r.substr(eq + 1);
    if (!is_safe_name(name)) {
      *err = "--repo " + r + ": NAME must be 1-" + std::to_string(msg::kMaxNameLen) +
             " of A-Z a-z 0-9 . _ - (not starting with . or -), then =URL";
      return false;
    }
    if (url.empty() || url.size() > msg::kMaxTextLen ||
        std::any_of(url.begin(), url.end(), [](unsigned char ch) { return ch < 0x20 || ch == 0x7f; })) {
      *err = "--repo " + name + ": the URL must be 1-" + std::to_string(msg::kMaxTextLen) +
             " characters without control characters";
      return false;
    }
    if (std::any_of(out->begin(), out->end(), [&](const msg::RepoInfo& i) { return i.name == name; })) {
      *err = "--repo " + name + " is given twice";
      return false;
    }
    if (out->size() == msg::kMaxRepos) {
      *err = "at most " + std::to_string(msg::kMaxRepos) + " repositories (--repo)";
      return false;
    }
    out->push_back(msg::RepoInfo{name, url, 0});
  }
  for (const std::string& l : limits) {
    const size_t eq = l.find('=');
    const std::string name = l.substr(0, eq), n = eq == std::string::npos ? "" : l.substr(eq + 1);
    auto it = std::find_if(out->begin(), out->end(), [&](const msg::RepoInfo& i) { return i.name == name; });
    if (it == out->end()) {
      *err = "--repo-limit " + l + ": no repository " + name + " is declared (--repo " + name + "=URL)";
      return false;
    }
    const bool digits = !n.empty() && n.size() <= 6 && std::all_of(n.begin(), n.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
    const unsigned long v = digits ? std::stoul(n) : 0;
    if (!digits || v < 1 || v > msg::kMaxRepoLimit) {
      *err = "--repo-limit " + l + ": N must be 1-" + std::to_string(msg::kMaxRepoLimit);
      return false;
    }
    it->limit = static_cast<uint32_t>(v);
  }
  return true;
}

const msg::RepoInfo* Dispatcher::repo_info(const std::string& name) const {
  for (const msg::RepoInfo& r : cfg_.repos) {
    if (r.name == name) return &r;
  }
  return nullptr;
}

std::vector<msg::RepoInfo> Dispatcher::repos_for_peers() const {
  std::vector<msg::RepoInfo> out = cfg_.repos;
  if (!cfg_.send_urls) {
    for (msg::RepoInfo& r : out) r.url.clear();
  }
  return out;
}

// Only runners that are connected count, busy or not: a job waits with a reason when none of
// them could ever take it, and starts when one that can registers.
std::string Dispatcher::waiting_reason(const msg::JobSummary& s) const {
  bool serves = false;
  for (const auto& [name, r] : runners_.all()) {
    if (can_take(r, Needs{s.repo, s.labels})) return "";
    serves |= s.repo.empty() ? r.serves_unnamed : r.serves_all;
  }
  if (!serves) {
    return s.repo.empty() ? "waiting: no runner serves the unnamed repository (started with a clone)"
                          : "waiting: no runner serves repository " + s.repo;
  }
  std::string labels;
  for (const std::string& l : s.labels) labels += (labels.empty() ? "" : ",") + l;
  return "waiting: no runner with labels " + labels;
}

std::vector<msg::JobSummary> Dispatcher::queued_jobs(bool by_repo, const std::string& repo) const {
  std::vector<msg::JobSummary> out = jobs_.first_queued(msg::kMaxListLen, by_repo ? &repo : nullptr);
  for (msg::JobSummary& s : out) s.waiting = waiting_reason(s);
  return out;
}

void Dispatcher::end_undeclared() {
  for (const std::string& repo : jobs_.repos()) {
    if (repo.empty() || repo_info(repo)) continue;
    const std::vector<uint64_t> ids = jobs_.ids_in(repo);
    spdlog::warn("repository {} is no longer declared (--repo): its {} queued or running job(s) end as error",
                 repo, ids.size());
    for (uint64_t id : ids) {
      const Active* a = jobs_.find(id);
      if (!a) continue;
      const msg::JobSummary s = a->s;
      if (const Runner* r = runners_.find(s.runner); r && s.status == msg::JobStatus::kRunning) {
        send_later(r->peer, msg::CancelJob{id, std::max<uint32_t>(1, s.attempt)});
      }
      finish(id, Ending{msg::JobStatus::kError, -1, s.started_at_ms, clock_.wall_ms(), false,
                        "simpleci: repository " + repo + " is no longer declared\n"});
    }
  }
}

}  // namespace simpleci::dispatcher
