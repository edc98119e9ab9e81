#include "dispatcher/dispatcher.h"

#include <spdlog/spdlog.h>

#include "dispatcher/results.h"
#include "messages/validate.h"

namespace simpleci::dispatcher {

using msg::JobStatus;

Dispatcher::Dispatcher(Clock& clock, JobStore& store, Outbox& out, Config cfg, Syncer* syncer)
    : clock_(clock),
      store_(store),
      out_(out),
      cfg_(std::move(cfg)),
      hb_(cfg_.heartbeat_ms),
      live_(cfg_.live_window),
      files_(clock, store, cfg_, counters_),
      round_(out, syncer, files_, counters_),
      feed_(random_feed_id(), [&out](std::string_view peer) { return out.peer_bytes(peer); }),
      started_wall_ms_(clock.wall_ms()),
      activity_since_(clock.now()),
      next_prune_(activity_since_) {}

bool Dispatcher::recover(std::string* err) {
  // Read into a fresh queue, one row at a time: a store that cannot be read leaves the state
  // as it was, and a million queued rows are never held as rows (a reload after a failed commit
  // holds the old queue and the new one for that moment).
  JobQueue fresh;
  size_t orphans = 0, rows = 0;
  const SteadyTime now = clock_.now();
  const bool read = store_.for_each_active(
      [&](const JobRow& row) {
        ++rows;
        const bool attached = row.summary.status == JobStatus::kRunning &&
                              runners_.find(row.summary.runner) != nullptr;
        orphans += fresh.load_row(row, attached, now) ? 1 : 0;
        return true;
      },
      err);
  if (!read) return false;
  runners_.clear_jobs();
  live_.clear();
  jobs_ = std::move(fresh);
  for (uint64_t id : jobs_.running()) {
    const Active& a = jobs_.at(id);
    if (!a.orphaned) runners_.find(a.s.runner)->jobs.insert(id);
  }
  if (rows > 0) {
    spdlog::info("store holds {} queued and {} running jobs", jobs_.queued(),
                 rows - jobs_.queued());
  }
  if (orphans > 0) {
    spdlog::info("{} running jobs wait up to {} ms for their runners to return", orphans,
                 3 * hb_.count());
  }
  end_undeclared();
  return true;
}

bool Dispatcher::reconcile_files(std::string* err) {
  ReconcileStats st;
  if (!reconcile_results(store_, cfg_.results_dir, cfg_.fsync_results, &st, err)) return false;
  counters_["results.rewritten"] += st.rewritten;
  counters_["results.file_errors"] += st.failed;
  files_.retry_later(st.failed_jobs);  // retried from tick(), like any failed write
  const bool news = st.rewritten > 0 || st.failed > 0 || st.temps_removed > 0;
  spdlog::log(news ? spdlog::level::info : spdlog::level::debug,
              "result files: {} commits checked against the store, {} rewritten, {} failed, {} "
              "leftover temporary files removed",
              st.checked, st.rewritten, st.failed, st.temps_removed);
  return true;
}

// ---- input ------------------------------------------------------------------------------

void Dispatcher::on_message(std::string_view peer, int fd, std::span<const std::string_view> frames,
                            std::string_view user_id) {
  if (frames.size() != 2) {
    reject(msg::DecodeError::kFrameCount, peer, std::to_string(frames.size()) + " frames", 0);
    return;
  }
  const msg::Peeked p = msg::peek(frames[1]);
  if (!allowed(peer, user_id, p)) return;
  msg::Decoded d = msg::decode(frames[0], frames[1], msg::kMaxRequestObjects);
  if (!d.ok()) {
    reject(d.error, peer, d.detail, p.request_id);
    return;
  }
  handle(peer, fd, d.message, user_id);
}

// Under CURVE: is the key still listed, and does its role allow this type of message? Checked
// before decoding, so a refused peer costs no decode and learns nothing about its fields.
bool Dispatcher::allowed(std::string_view peer, std::string_view user_id, const msg::Peeked& p) {
  if (!authorized_) return true;
  auto key = authorized_->find(user_id);
  if (key == authorized_->end()) {
    reject_reason("unauthorized", peer, "key '" + std::string(user_id) + "' is no longer authorised");
    if (Runner* r = runners_.session(peer)) runner_lost(std::string(r->name), "its key was revoked");
    send_later(peer, msg::Error{p.request_id, msg::ErrorCode::kUnauthorized,
                                "this key is no longer authorised"});
    return false;
  }
  if (role_allows(key->second, p.type)) return true;
  const std::string what(msg::to_string(static_cast<msg::MessageType>(p.type)));
  const std::string who = "key '" + key->first + "' (" + std::string(to_string(key->second)) + ")";
  reject_reason("unauthorized", peer, who + " sent " + what);
  send_later(peer, msg::Error{p.request_id, msg::ErrorCode::kUnauthorized, who + " may not send " + what});
  return false;
}

void Dispatcher::set_authorized(Authorized keys) {
  authorized_ = std::move(keys);
  std::vector<std::string> revoked;
  constexpr auto kRegister = static_cast<uint8_t>(msg::MessageType::kRegister);
  for (const auto& [name, r] : runners_.all()) {
    auto key = authorized_->find(name);
    if (key == authorized_->end() || !role_allows(key->second, kRegister)) revoked.push_back(name);
  }
  for (const auto& name : revoked) runner_lost(name, "its key was revoked");
}

void Dispatcher::handle(std::string_view peer, int fd, msg::Message& m, std::string_view user_id) {
  Runner* r = runners_.session(peer);
  if (r) {  // any message is a sign of life
    r->last_seen = clock_.now();
    r->last_seen_wall = clock_.wall_ms();
    if (fd >= 0) r->fd = fd;
  }
  std::visit(
      [&](auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, msg::Register>) {
          on_register(peer, fd, v, user_id);
        } else if constexpr (std::is_same_v<T, msg::Heartbeat>) {
          need_session(r, peer, m);
        } else if constexpr (std::is_same_v<T, msg::Output>) {
          if (Runner* s = need_session(r, peer, m)) on_output(*s, v);
        } else if constexpr (std::is_same_v<T, msg::Result>) {
          if (Runner* s = need_session(r, peer, m)) on_result(*s, v);
        } else if constexpr (std::is_same_v<T, msg::Drain>) {
          if (Runner* s = need_session(r, peer, m)) {
            s->draining = true;
            publish_runner(msg::EventKind::kRunnerChanged, s->name);
            spdlog::info("runner {} is draining ({} jobs left)", s->name, s->jobs.size());
          }
        } else if constexpr (std::is_same_v<T, msg::Commit>) {
          on_commit(peer, v);
        } else if constexpr (std::is_same_v<T, msg::StatusRequest>) {
          on_status(peer, v);
        } else if constexpr (std::is_same_v<T, msg::ResultsRequest>) {
          on_results(peer, v);
        } else if constexpr (std::is_same_v<T, msg::CancelRequest>) {
          on_cancel(peer, v);
        } else if constexpr (std::is_same_v<T, msg::RetryRequest>) {
          on_retry(peer, v);
        } else if constexpr (std::is_same_v<T, msg::WatchRequest>) {
          on_watch(peer, v);
        } else if constexpr (std::is_same_v<T, msg::PruneRequest>) {
          on_prune(peer, v);
        } else if constexpr (std::is_same_v<T, msg::ObserverHello>) {
          on_observer_hello(peer, v);
        } else if constexpr (std::is_same_v<T, msg::Notify>) {
          on_notify(peer, v);
        } else if constexpr (std::is_same_v<T, msg::Subscribe>) {
          on_subscribe(peer, v);
        } else if constexpr (std::is_same_v<T, msg::Unsubscribe>) {
          on_unsubscribe(peer, v);
        } else if constexpr (std::is_same_v<T, msg::MetricsRequest>) {
          on_metrics(peer, v);
        } else if constexpr (std::is_same_v<T, msg::JobsRequest>) {
          on_jobs(peer, v);
        } else {
          unexpected(peer, m);
        }
      },
      m);
}

// A runner's message from a peer without a session: it is told to register again.
Runner* Dispatcher::need_session(Runner* r, std::string_view peer, const msg::Message& m) {
  if (!r) {
    reject_reason("unregistered", peer, std::string(msg::to_string(msg::type_of(m))));
    send_later(peer, msg::Reregister{});
  }
  return r;
}

void Dispatcher::unexpected(std::string_view peer, const msg::Message& m) {
  std::string what(msg::to_string(msg::type_of(m)));
  reject_reason("unexpected_type", peer, what);
  // Never answer an ERROR with an ERROR: two confused peers would ping-pong forever.
  if (!std::holds_alternative<msg::Error>(m)) {
    send_later(peer, msg::Error{0, msg::ErrorCode::kBadRequest, "the dispatcher does not accept " + what});
  }
}

// ---- bad input --------------------------------------------------------------------------

void Dispatcher::reject(msg::DecodeError why, std::string_view peer, const std::string& detail,
                        uint64_t request_id) {
  reject_reason(std::string(msg::to_string(why)), peer, detail);
  if (why == msg::DecodeError::kVersion) {
    send_later(peer, msg::Error{request_id, msg::ErrorCode::kVersionMismatch,
                                "this dispatcher speaks protocol version " +
                                    std::to_string(msg::kProtocolVersion)});
  } else if (why == msg::DecodeError::kBadField) {
    send_later(peer, msg::Error{request_id, msg::ErrorCode::kBadRequest, detail.substr(0, 1000)});
  }
}

void Dispatcher::reject_reason(const std::string& reason, std::string_view peer,
                               const std::string& detail) {
  ++counters_["rejected." + reason];
  uint64_t held = 0;
  if (bad_log_.allow(clock_.now(), &held)) {
    const Runner* r = runners_.session(peer);
    spdlog::warn("dropped a message from {}: {} ({}){}", r ? "runner " + r->name : "an unregistered peer",
                 reason, detail.substr(0, 200), LogLimiter::held_back(held));
  }
}

// ---- the round's end --------------------------------------------------------------------

// Commits this round's transaction (*wrote: it held changes); false when a write of the round
// or the commit failed (*err says why).
bool Dispatcher::commit_round(std::string* err, bool* wrote) {
  *wrote = false;
  if (tx_failed_) {
    *err = tx_error_;
    return false;
  }
  if (!store_.in_transaction()) return true;
  const SteadyTime t0 = clock_.now();
  if (!store_.commit(err)) return false;
  *wrote = true;
  // The commit does not flush the disk (the syncer does); one that still holds the loop for
  // long (a checkpoint, a huge round) is worth knowing about: peers hear nothing meanwhile.
  if (const auto took = clock_.now() - t0; took >= hb_) {
    spdlog::warn("the store's commit took {} ms; the heartbeat interval is {} ms",
                 std::chrono::duration_cast<Millis>(took).count(), hb_.count());
  }
  return true;
}

bool Dispatcher::flush() {
  dispatch();
  send_round_events();
  std::string err;
  bool wrote = false;
  if (commit_round(&err, &wrote)) {
    round_.committed(wrote);
    feed_sent();
    return true;
  }
  store_.rollback();
  ++counters_["store.failures"];
  spdlog::error("store commit failed, nothing of this round was kept: {}", err);
  round_.failed();
  feed_sent();
  tx_failed_ = false;
  tx_error_.clear();
  reload();
  return false;
}

bool Dispatcher::reload() {
  std::string err;
  bool ok = recover(&err);
  if (!ok) spdlog::error("cannot reload the store: {}", err);
  return ok;
}

void Dispatcher::finish_writes() {
  round_.finish();
  wait_files();
}

// ---- time -------------------------------------------------------------------------------

void Dispatcher::on_disconnect(int fd) {
  if (auto name = runners_.name_on_fd(fd)) runner_lost(*name, "connection closed");
}

void Dispatcher::tick() {
  heartbeats();
  sweep_running();
  files_.retry_due();
  prune_periodically();
  log_activity();
  feed_tick();
}

// Per-job lines are debug; this info line sums them up at most every 10 s (and only when
// something happened), so a busy dispatcher's log grows with time, not with traffic.
void Dispatcher::log_activity() {
  constexpr auto kEvery = std::chrono::seconds(10);
  const SteadyTime now = clock_.now();
  if (now - activity_since_ < kEvery) return;
  if (activity_.queued > 0 || activity_.finished > 0) {
    std::string by;
    for (const auto& [status, n] : activity_.by_status) {
      by += (by.empty() ? "" : ", ") + std::to_string(n) + " " + status;
    }
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(now - activity_since_).count();
    spdlog::info("last {} s: {} queued, {} finished{}; {} waiting, {} running", secs,
                 activity_.queued, activity_.finished, by.empty() ? "" : " (" + by + ")",
                 jobs_.queued(), jobs_.active() - jobs_.queued());
  }
  activity_ = Activity{};
  activity_since_ = now;
}

std::vector<msg::Counter> Dispatcher::counters(size_t max) const {
  Counters all = counters_;
  if (uint64_t n = out_.over_budget()) all["send.over_budget"] += n;
  std::vector<msg::Counter> out;
  for (const auto& [name, v] : all) {
    if (out.size() < max) out.push_back({name, v});
  }
  return out;
}

uint64_t Dispatcher::counter(const std::string& name) const {
  auto it = counters_.find(name);
  const uint64_t extra = name == "send.over_budget" ? out_.over_budget() : 0;
  return (it == counters_.end() ? 0 : it->second) + extra;
}

}  // namespace simpleci::dispatcher
