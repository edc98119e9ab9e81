#include "observer/observer.h"

#include <algorithm>
#include <sstream>

#include <spdlog/spdlog.h>

#include "common/fsutil.h"
#include "messages/validate.h"
#include "observer/git_watch.h"

namespace simpleci::observer {

namespace {
constexpr size_t kMaxNewPerPoll = 1000;
constexpr Millis kMaxBackoff(32000);
}  // namespace

Observer::Observer(Clock& clock, Link& link, Options opt) : clock_(clock), link_(link), opt_(std::move(opt)) {
  if (opt_.cache_dir.empty()) {
    Repo& r = repos_[""];
    r.dir = opt_.clone_dir;
    r.state_file = opt_.state_file;
    r.git = std::make_unique<GitWatch>(opt_.clone_dir);
  }
  next_poll_ = clock_.now();
  last_poll_ = clock_.now() - opt_.min_wake_gap;
  last_reply_ = clock_.now();
  next_hello_ = clock_.now();
}

const std::map<std::string, std::string>& Observer::cursors(const std::string& repo) const {
  static const std::map<std::string, std::string> kNone;
  auto it = repos_.find(repo);
  return it == repos_.end() ? kNone : it->second.cursors;
}

const GitWatch* Observer::git_of(const std::string& repo) const {
  auto it = repos_.find(repo);
  return it == repos_.end() ? nullptr : it->second.git.get();
}

std::vector<std::string> Observer::repos() const {
  std::vector<std::string> names;
  for (const auto& [name, r] : repos_) names.push_back(name);
  return names;
}

bool Observer::load_state(std::string* err) {
  auto it = repos_.find("");
  return it == repos_.end() || load_state(it->second, err);
}

bool Observer::load_state(Repo& r, std::string* err) {
  std::string text;
  std::error_code ec;
  if (!std::filesystem::exists(r.state_file, ec)) return true;
  if (!read_file(r.state_file, 1 << 20, &text, err)) return false;
  std::istringstream in(text);
  std::string branch, commit;
  int line = 0;
  while (in >> branch >> commit) {
    ++line;
    if (!is_valid_branch(branch) || !is_commit_id(commit)) {
      *err = "bad line " + std::to_string(line) + " in state file " + r.state_file;
      return false;
    }
    r.cursors[branch] = commit;
  }
  return true;
}

bool Observer::save_state(const Repo& r, std::string* err) {
  std::string text;
  for (const auto& [b, c] : r.cursors) text += b + " " + c + "\n";
  return write_file_atomic(r.state_file, text, true, err);
}

// A declared repository's clone and cursors, made and read on first use (and tried again at
// every poll until that works).
bool Observer::ready(Repo& r) {
  if (r.git) return true;
  std::string err;
  const std::filesystem::path dir(r.dir);
  const bool ok = init_clone(r.dir, r.url, &err) &&
                  ensure_writable_dir(dir / ".git" / "simpleci", &err) && load_state(r, &err);
  if (!ok) {
    uint64_t held = 0;
    if (bad_log_.allow(clock_.now(), &held)) {
      spdlog::warn("repository {}: {}{}", r.name, err, LogLimiter::held_back(held));
    }
    r.cursors.clear();
    return false;
  }
  if (int stale = git::remove_stale_locks(r.dir); stale > 0) {
    spdlog::warn("repository {}: removed {} stale git lock file(s) left by an earlier run", r.name, stale);
  }
  r.git = std::make_unique<GitWatch>(r.dir);
  return true;
}

bool Observer::poll_git() {
  bool ok = true;
  for (auto& [name, r] : repos_) ok = ready(r) && poll_repo(r) && ok;
  spdlog::trace("polled origin");  // simpleci-bench soak counts these
  return ok;
}

bool Observer::poll_repo(Repo& r) {
  std::string err;
  // Plain names are asked for by name (git::ls_origin); patterns and the default branch need
  // origin's whole branch list.
  const bool by_name = !opt_.branches.empty() && std::none_of(opt_.branches.begin(), opt_.branches.end(), is_pattern);
  if (!(by_name ? r.git->update(opt_.branches, &err) : r.git->update_matching(opt_.branches, &err))) {
    uint64_t held = 0;
    const std::string where = r.name.empty() ? "" : "repository " + r.name + ": ";
    if (bad_log_.allow(clock_.now(), &held)) spdlog::warn("{}{}{}", where, err, LogLimiter::held_back(held));
    return false;
  }
  drop_gone_branches(r);
  for (const auto& [branch, tip] : r.git->tips()) {
    // Continue after the newest commit already queued for the branch, else after the cursor.
    auto cur = r.cursors.find(branch);
    std::string from = cur == r.cursors.end() ? "" : cur->second;
    for (auto it = items_.rbegin(); it != items_.rend(); ++it) {
      if (it->repo == r.name && it->branch == branch) {
        from = it->commit;
        break;
      }
    }
    NewCommits found;
    if (!r.git->new_commits(branch, from, kMaxNewPerPoll, &found, &err)) {
      spdlog::warn("branch {}{}: {}", branch, r.name.empty() ? "" : " of " + r.name, err);
      continue;
    }
    if (found.missing) continue;
    if (found.rewritten) spdlog::warn("branch {} was rewritten; testing its new tip", branch);
    for (const auto& c : found.commits) {
      if (from.empty()) spdlog::info("first look at {}{}: tip {}", branch, r.name.empty() ? "" : " of " + r.name, c);
      queue(r, branch, c);
    }
  }
  return true;
}

// A branch with a cursor that origin no longer has (or that no longer matches) is forgotten,
// once nothing of it waits to be accepted: if it comes back it is taken at its tip.
void Observer::drop_gone_branches(Repo& r) {
  bool dropped = false;
  for (auto it = r.cursors.begin(); it != r.cursors.end();) {
    const std::string& branch = it->first;
    const bool pending = std::any_of(items_.begin(), items_.end(),
                                     [&](const Item& i) { return i.repo == r.name && i.branch == branch; });
    if (r.git->tips().count(branch) || pending) {
      ++it;
      continue;
    }
    spdlog::info("branch {}{} is no longer watched (gone from origin or not matching); dropped from the cursor",
                 branch, r.name.empty() ? "" : " of " + r.name);
    it = r.cursors.erase(it);
    dropped = true;
  }
  std::string err;
  if (dropped && !save_state(r, &err)) spdlog::error("cannot save the cursor: {}", err);
}

void Observer::queue(Repo& r, const std::string& branch, const std::string& commit) {
  Item item;
  item.repo = r.name;
  item.branch = branch;
  item.commit = commit;
  item.request_id = next_request_++;
  git::JobsFolder jobs;
  std::string err;
  if (!r.git->jobs(commit, &jobs, &err)) {
    spdlog::warn("cannot read the jobs of {}: {}; sending it as one job", commit, err);
  }
  for (const auto& note : jobs.notes) spdlog::info("{}: {}", commit, note);
  item.jobs = std::move(jobs.jobs);
  spdlog::info("new commit {} on {}{}{}", commit, branch, r.name.empty() ? "" : " of " + r.name,
               item.jobs.empty() ? "" : " (" + std::to_string(item.jobs.size()) + " jobs)");
  items_.push_back(std::move(item));
}

// The dispatcher's declared repositories (again after a restart: the set is replaced).
void Observer::set_repos(const msg::Repos& m) {
  if (opt_.cache_dir.empty()) {
    spdlog::debug("ignoring REPOS: this observer watches one clone");
    return;
  }
  std::map<std::string, std::string> wanted;  // name -> url
  std::set<std::string> no_url;
  for (const auto& info : m.repos) {
    if (info.name.empty()) continue;  // the unnamed repository is watched only with a clone
    auto mine = opt_.repo_urls.find(info.name);
    std::string url = mine != opt_.repo_urls.end() ? mine->second : opt_.authenticated ? info.url : "";
    if (url.empty()) {
      if (!no_url_.count(info.name)) {
        spdlog::error("no URL for repository {}: give --repo-url {}=URL ({})", info.name, info.name,
                      opt_.authenticated ? "the dispatcher sent none" : "the dispatcher is not authenticated");
      }
      no_url.insert(info.name);
      continue;
    }
    wanted[info.name] = url;
  }
  no_url_ = std::move(no_url);
  for (auto it = repos_.begin(); it != repos_.end();) {
    auto w = wanted.find(it->first);
    if (w != wanted.end() && w->second == it->second.url) {
      ++it;
      continue;
    }
    spdlog::info("repository {} is {}; no longer watching {}", it->first,
                 w == wanted.end() ? "no longer declared" : "at a new URL", it->second.url);
    const std::string name = it->first;
    std::erase_if(items_, [&](const Item& i) { return i.repo == name; });
    it = repos_.erase(it);
  }
  for (const auto& [name, url] : wanted) {
    if (repos_.count(name)) continue;
    Repo& r = repos_[name];
    r.name = name;
    r.url = url;
    r.dir = (std::filesystem::path(opt_.cache_dir) / name).string();
    r.state_file = (std::filesystem::path(r.dir) / ".git" / "simpleci" / "observer-state").string();
    spdlog::info("watching repository {} ({}) in {}", name, url, r.dir);
    next_poll_ = clock_.now();  // look at it at once
  }
}

void Observer::on_frames(const std::string& header, const std::string& body) {
  msg::Decoded d = msg::decode(header, body);
  if (d.error == msg::DecodeError::kVersion) {
    if (version_error_.empty()) version_error_ = msg::dispatcher_version_line(d);
    return;
  }
  if (!d.ok()) {
    uint64_t held = 0;
    if (bad_log_.allow(clock_.now(), &held)) {
      spdlog::warn("dropped a bad message: {} ({}){}", msg::to_string(d.error), d.detail, LogLimiter::held_back(held));
    }
    return;
  }
  last_reply_ = clock_.now();
  backoff_ = Millis(1000);
  if (const auto* a = std::get_if<msg::Accepted>(&d.message)) {
    for (auto& it : items_) {
      if (it.request_id == a->request_id && it.sent) {
        it.accepted = true;
        spdlog::info("{} {} as job {}", it.commit, a->duplicate ? "already known" : "queued", a->job_id);
      }
    }
    advance();
  } else if (const auto* w = std::get_if<msg::Wake>(&d.message)) {
    wake(*w);
  } else if (const auto* r = std::get_if<msg::Repos>(&d.message)) {
    set_repos(*r);
  } else if (const auto* e = std::get_if<msg::Error>(&d.message)) {
    uint64_t held = 0;
    if (e->request_id == 0) {  // not about a COMMIT: e.g. a key whose role may not say hello
      if (bad_log_.allow(clock_.now(), &held)) spdlog::warn("dispatcher: {} ({})", e->text, msg::to_string(e->code));
      return;
    }
    spdlog::warn("dispatcher refused request {}: {} ({}); will retry", e->request_id, e->text,
                 msg::to_string(e->code));
    for (auto& it : items_) {
      if (it.request_id == e->request_id) {
        it.sent = false;
        it.retry_at = clock_.now() + opt_.resend;
      }
    }
  } else if (!std::holds_alternative<msg::Reregister>(d.message)) {
    spdlog::debug("ignoring {}", msg::to_string(msg::type_of(d.message)));
  }
}

// A push was notified: poll now, or as soon as the gap since the last poll allows (a WAKE during
// the gap is kept, not dropped: the push it announces may have landed after that poll).
void Observer::wake(const msg::Wake& w) {
  // Without --branch a repository's default branch is watched, whichever that is: any push may
  // concern it.
  const bool ours = w.branches.empty() || opt_.branches.empty() ||
                    std::any_of(w.branches.begin(), w.branches.end(),
                                [&](const auto& b) { return branch_matches(opt_.branches, b.name); });
  if (!ours) return;
  next_poll_ = std::min(next_poll_, std::max(clock_.now(), last_poll_ + opt_.min_wake_gap));
  spdlog::debug("woken by the dispatcher: a push was notified");
}

void Observer::say_hello(SteadyTime now) {
  if (now < next_hello_) return;
  // Not queued (no connection yet): tried again in a second, never in a busy loop.
  next_hello_ = now + (link_.send(msg::ObserverHello{!opt_.cache_dir.empty()}) ? opt_.hello : std::min(opt_.hello, Millis(1000)));
}

void Observer::advance() {
  std::set<std::string> moved;
  while (!items_.empty() && items_.front().accepted) {
    const Item& it = items_.front();
    auto r = repos_.find(it.repo);
    if (r != repos_.end()) {
      r->second.cursors[it.branch] = it.commit;
      moved.insert(it.repo);
    }
    items_.pop_front();
  }
  for (const auto& name : moved) {
    std::string err;
    if (!save_state(repos_.at(name), &err)) spdlog::error("cannot save the cursor: {}", err);
  }
}

void Observer::send_due() {
  SteadyTime now = clock_.now();
  size_t in_flight = 0;
  for (auto& it : items_) {
    if (it.accepted) continue;
    if (in_flight >= opt_.window) break;
    ++in_flight;
    bool due = !it.sent ? now >= it.retry_at : now - it.sent_at >= opt_.resend;
    if (!due) continue;
    const msg::Commit c{it.request_id, it.commit, it.branch, false, it.repo, it.jobs};
    if (link_.send(c)) {
      if (!it.sent) last_reply_ = std::max(last_reply_, now - opt_.resend);  // start the silence clock
      it.sent = true;
      it.sent_at = now;
    }
  }
}

void Observer::tick() {
  SteadyTime now = clock_.now();
  if (waiting_reconnect_) {
    if (now < reconnect_at_) return;
    spdlog::info("reconnecting to the dispatcher");
    link_.reconnect();
    waiting_reconnect_ = false;
    last_reply_ = now;
    for (auto& it : items_) it.sent = it.accepted;
    next_hello_ = now;  // a new routing id: the dispatcher must learn it
  }
  say_hello(now);
  if (now >= next_poll_) {
    poll_git();
    ++polls_;
    last_poll_ = clock_.now();
    next_poll_ = last_poll_ + opt_.poll;
  }
  bool awaiting = std::any_of(items_.begin(), items_.end(), [](const Item& i) { return i.sent && !i.accepted; });
  if (awaiting && now - last_reply_ >= 3 * opt_.resend) {
    spdlog::warn("no answer from the dispatcher; new connection in {} ms", backoff_.count());
    waiting_reconnect_ = true;
    reconnect_at_ = now + backoff_;
    backoff_ = std::min(2 * backoff_, kMaxBackoff);
    return;
  }
  send_due();
}

Millis Observer::next_wakeup() const {
  SteadyTime now = clock_.now();
  SteadyTime next = std::min(next_poll_, next_hello_);
  if (waiting_reconnect_) next = std::min(next, reconnect_at_);
  for (const auto& it : items_) {
    if (!it.accepted) next = std::min(next, it.sent ? it.sent_at + opt_.resend : it.retry_at);
  }
  // Rounded up: rounded down, the last millisecond before a poll would be spent in a busy loop
  // of zero-timeout sleeps.
  return std::clamp(std::chrono::ceil<Millis>(next - now), Millis(0), Millis(1000));
}

}  // namespace simpleci::observer
