#include "dispatcher/round.h"

#include <poll.h>

#include <algorithm>

#include <spdlog/spdlog.h>

#include "net/reply_budget.h"

namespace simpleci::dispatcher {

namespace {
// Replies that promise nothing a crash could take back leave right after the COMMIT; the others
// wait for the round's flush (see the header). Shared bodies are feed messages: never held.
bool needs_flush(const std::variant<msg::Message, SharedBody>& w) {
  const auto* m = std::get_if<msg::Message>(&w);
  return m && (std::holds_alternative<msg::Accepted>(*m) || std::holds_alternative<msg::ResultAck>(*m) ||
               std::holds_alternative<msg::Ok>(*m) || std::holds_alternative<msg::Error>(*m));
}
bool is_feed(const std::variant<msg::Message, SharedBody>& w) {
  const auto* m = std::get_if<msg::Message>(&w);
  return !m || std::holds_alternative<msg::Event>(*m) || std::holds_alternative<msg::JobOutput>(*m) ||
         std::holds_alternative<msg::Snapshot>(*m);
}
}  // namespace

void Round::send_later(std::string_view peer, msg::Message m) {
  if (net::carries_output(m)) output_pending_.emplace(peer);
  replies_.push_back({std::string(peer), std::move(m)});
}

void Round::send_shared_later(std::string_view peer, SharedBody b) {
  replies_.push_back({std::string(peer), std::move(b)});
}

void Round::send_now(const Reply& r) {
  const auto* m = std::get_if<msg::Message>(&r.what);
  if (m ? out_.send(r.peer, *m) : out_.send_shared(r.peer, std::get<SharedBody>(r.what))) return;
  ++counters_["send.dropped"];
  if (is_feed(r.what)) unsent_feed_.push_back(r.peer);
}

std::vector<Round::Reply> Round::take_replies() {
  output_pending_.clear();
  return std::exchange(replies_, {});
}

void Round::committed(bool wrote) {
  if (wrote) ++committed_seq_;
  hold_or_send(take_replies(), files_.take_round());
  if (wrote && syncer_) syncer_->committed(committed_seq_);
}

void Round::failed() {
  files_.drop_round();
  std::vector<Reply> answers;
  for (auto& d : take_replies()) {
    if (const auto* b = std::get_if<SharedBody>(&d.what)) {
      if (b->type == msg::MessageType::kJobOutput) answers.push_back(std::move(d));
      continue;  // EVENT and EVENTS told of what was rolled back
    }
    std::visit(
        [&](auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, msg::Accepted> || std::is_same_v<T, msg::Ok> ||
                        std::is_same_v<T, msg::Snapshot>) {
            answers.push_back({std::move(d.peer),
                               msg::Error{v.request_id, msg::ErrorCode::kStorageFailure,
                                          "the dispatcher cannot write its store; retry later"}});
          } else if constexpr (!std::is_same_v<T, msg::Job> && !std::is_same_v<T, msg::ResultAck> &&
                               !std::is_same_v<T, msg::Event>) {
            answers.push_back({std::move(d.peer), std::move(v)});
          }
        },
        std::get<msg::Message>(d.what));
  }
  // Nothing new committed: the ERRORs wait only for the rounds before (per-peer order).
  hold_or_send(std::move(answers), ResultWriter::Batch{});
}

// A round's replies after its COMMIT (or after nothing to commit): those that need no flush go
// now; the rest, with the round's files, go once the newest committed round is durable. A round
// that committed nothing still waits for the rounds before it, whose state its replies may tell
// (a result acknowledged as stale because an unflushed round finished the job).
void Round::hold_or_send(std::vector<Reply> out, ResultWriter::Batch files) {
  if (sync_failed_) return;  // nothing can be promised any more; the dispatcher is stopping
  std::vector<Reply> later;
  for (auto& d : out) {
    if (needs_flush(d.what)) later.push_back(std::move(d));
    else send_now(d);
  }
  if (!syncer_ || (committed_seq_ <= durable_seq_ && held_.empty())) {
    release(later, std::move(files));
    return;
  }
  if (later.empty() && files.files.empty() && files.removals.empty()) return;
  hold(std::move(later), std::move(files));
}

void Round::hold(std::vector<Reply> later, ResultWriter::Batch files) {
  held_bytes_ += files.output_bytes;
  if (held_.empty() || held_.back().seq != committed_seq_) {
    held_.push_back(Held{committed_seq_, std::move(later), std::move(files)});
    return;
  }
  Held& h = held_.back();  // same flush: join that round
  for (auto& d : later) h.replies.push_back(std::move(d));
  for (auto& f : files.files) h.files.files.push_back(std::move(f));
  for (auto& r : files.removals) h.files.removals.push_back(std::move(r));
  h.files.output_bytes += files.output_bytes;
}

// The round is on the disk: its replies go, and its files are written (a view of durable
// results).
void Round::release(std::vector<Reply>& replies, ResultWriter::Batch files) {
  for (const auto& d : replies) send_now(d);
  files_.write(std::move(files));
}

bool Round::on_synced() {
  if (!syncer_ || sync_failed_) return !sync_failed_;
  uint64_t seq = 0;
  std::string err;
  if (!syncer_->durable(&seq, &err)) {
    sync_failed_ = true;
    spdlog::error("{}; the disk may have dropped the store's last writes: stopping without sending "
                  "the {} round(s) of replies that waited for it (peers re-send; the store is "
                  "recovered at start)",
                  err, held_.size());
    held_.clear();
    held_bytes_ = 0;
    return false;
  }
  durable_seq_ = std::max(durable_seq_, seq);
  while (!held_.empty() && held_.front().seq <= durable_seq_) {
    Held h = std::move(held_.front());
    held_.pop_front();
    held_bytes_ -= std::min(held_bytes_, h.files.output_bytes);
    release(h.replies, std::move(h.files));
  }
  return true;
}

void Round::finish() {
  while (syncer_ && !held_.empty() && !sync_failed_) {
    pollfd p{syncer_->fd(), POLLIN, 0};
    ::poll(&p, 1, 100);
    on_synced();
  }
}

}  // namespace simpleci::dispatcher
