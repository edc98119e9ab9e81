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

Observer::Observer(Clock& clock, Link& link, Options opt)
    : clock_(clock), link_(link), opt_(std::move(opt)), git_(opt_.clone_dir) {
  next_poll_ = clock_.now();
  last_poll_ = clock_.now() - opt_.min_wake_gap;
  last_reply_ = clock_.now();
  next_hello_ = clock_.now();
}

bool Observer::load_state(std::string* err) {
  std::string text;
  std::error_code ec;
  if (!std::filesystem::exists(opt_.state_file, ec)) return true;
  if (!read_file(opt_.state_file, 1 << 20, &text, err)) return false;
  std::istringstream in(text);
  std::string branch, commit;
  int line = 0;
  while (in >> branch >> commit) {
    ++line;
    if (!is_valid_branch(branch) || !is_commit_id(commit)) {
      *err = "bad line " + std::to_string(line) + " in state file " + opt_.state_file;
      return false;
    }
    cursors_[branch] = commit;
  }
  return true;
}

bool Observer::save_state(std::string* err) {
  std::string text;
  for (const auto& [b, c] : cursors_) text += b + " " + c + "\n";
  return write_file_atomic(opt_.state_file, text, true, err);
}

bool Observer::poll_git() {
  std::string err;
  if (!git_.update(opt_.branches, &err)) {
    uint64_t held = 0;
    if (bad_log_.allow(clock_.now(), &held)) spdlog::warn("{}{}", err, LogLimiter::held_back(held));
    return false;
  }
  for (const auto& branch : opt_.branches) {
    // Continue after the newest commit already queued for the branch, else after the cursor.
    std::string from = cursors_.count(branch) ? cursors_[branch] : "";
    for (auto it = items_.rbegin(); it != items_.rend(); ++it) {
      if (it->branch == branch) {
        from = it->commit;
        break;
      }
    }
    NewCommits found;
    if (!git_.new_commits(branch, from, kMaxNewPerPoll, &found, &err)) {
      spdlog::warn("branch {}: {}", branch, err);
      continue;
    }
    if (found.missing) continue;
    if (found.rewritten) spdlog::warn("branch {} was rewritten; testing its new tip", branch);
    for (const auto& c : found.commits) {
      if (from.empty() && cursors_.count(branch) == 0) spdlog::info("first look at {}: tip {}", branch, c);
      Item item;
      item.branch = branch;
      item.commit = c;
      item.request_id = next_request_++;
      items_.push_back(std::move(item));
      spdlog::info("new commit {} on {}", c, branch);
    }
  }
  spdlog::trace("polled origin");  // simpleci-bench soak counts these
  return true;
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
  const bool ours = w.branches.empty() || std::any_of(w.branches.begin(), w.branches.end(), [&](const auto& b) {
                      return std::find(opt_.branches.begin(), opt_.branches.end(), b.name) != opt_.branches.end();
                    });
  if (!ours) return;
  next_poll_ = std::min(next_poll_, std::max(clock_.now(), last_poll_ + opt_.min_wake_gap));
  spdlog::debug("woken by the dispatcher: a push was notified");
}

void Observer::say_hello(SteadyTime now) {
  if (now < next_hello_) return;
  // Not queued (no connection yet): tried again in a second, never in a busy loop.
  next_hello_ = now + (link_.send(msg::ObserverHello{}) ? opt_.hello : std::min(opt_.hello, Millis(1000)));
}

void Observer::advance() {
  bool moved = false;
  while (!items_.empty() && items_.front().accepted) {
    cursors_[items_.front().branch] = items_.front().commit;
    items_.pop_front();
    moved = true;
  }
  std::string err;
  if (moved && !save_state(&err)) spdlog::error("cannot save the cursor: {}", err);
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
    msg::Commit c{it.request_id, it.commit, it.branch, false};
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
