// A Dispatcher wired to a FakeClock and an outbox that records what it would send. It runs the
// production configuration (result files on the writer thread); the helpers that end a round wait
// for the writer, so a test sees the files on the disk.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "dispatcher/dispatcher.h"
#include "dispatcher/store.h"
#include "messages/codec.h"

namespace simpleci::dispatcher {

class RecordingOutbox : public Outbox {
 public:
  bool send(std::string_view peer, const msg::Message& m) override {
    if (gone.contains(peer)) return false;
    if (deaf.contains(peer)) unread[std::string(peer)] += msg::encode(m).size();
    sent.emplace_back(std::string(peer), m);
    return true;
  }
  // Shared bodies (the feed) are decoded; an EVENTS is recorded as its EVENTs one by one, and
  // counted in `batches` (messages per peer).
  bool send_shared(std::string_view peer, const SharedBody& b) override {
    if (gone.contains(peer)) return false;
    ++batches[std::string(peer)];
    bodies.insert(b.bytes.get());
    msg::Decoded d = msg::decode_body(*b.bytes);
    if (!d.ok()) return false;
    if (deaf.contains(peer)) unread[std::string(peer)] += b.bytes->size();
    if (auto* e = std::get_if<msg::Events>(&d.message)) {
      for (auto& ev : e->events) sent.emplace_back(std::string(peer), std::move(ev));
    } else {
      sent.emplace_back(std::string(peer), std::move(d.message));
    }
    return true;
  }
  size_t peer_bytes(std::string_view peer) const override {
    auto it = unread.find(peer);
    return it == unread.end() ? 0 : it->second;
  }
  // Messages of type T sent to peer since the last take().
  template <typename T>
  std::vector<T> take(const std::string& peer) {
    std::vector<T> out;
    std::vector<std::pair<std::string, msg::Message>> rest;
    for (auto& [p, m] : sent) {
      if (p == peer && std::holds_alternative<T>(m)) out.push_back(std::get<T>(m));
      else rest.emplace_back(p, m);
    }
    sent.swap(rest);
    return out;
  }
  std::vector<std::pair<std::string, msg::Message>> sent;
  // Peers that never read: what they are sent stays in flight (peer_bytes). Peers that are gone:
  // sends to them fail.
  std::set<std::string, std::less<>> deaf, gone;
  std::map<std::string, size_t, std::less<>> unread;
  std::map<std::string, size_t, std::less<>> batches;
  std::set<const void*> bodies;  // the distinct shared bodies sent
};

inline std::string commit_id(int n) {
  std::string s = std::to_string(n);
  return std::string(40 - s.size(), 'a') + s;
}

class DispatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/simpleci-dtest-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    cfg_.heartbeat_ms = 100;
    cfg_.max_attempts = 3;
    cfg_.results_dir = dir_ / "results";
    std::filesystem::create_directories(cfg_.results_dir);
    open();
  }
  void TearDown() override {
    d_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void open() {
    d_.reset();
    store_ = std::make_unique<Store>();
    std::string err;
    ASSERT_TRUE(store_->open((dir_ / "db").string(), &err)) << err;
    d_ = std::make_unique<Dispatcher>(clock_, dispatcher_store(), out_, cfg_, syncer_);
    ASSERT_TRUE(d_->recover(&err)) << err;
  }
  // The store the Dispatcher is given: store_ itself, or a wrapper around it (faulty_store.h).
  virtual JobStore& dispatcher_store() { return *store_; }
  void deliver(const std::string& peer, const msg::Message& m, int fd = -1) {
    std::string h = msg::header_frame(), b = msg::encode(m);
    std::vector<std::string_view> frames = {h, b};
    d_->on_message(peer, fd, frames);
    flush();
  }
  void raw(const std::string& peer, std::vector<std::string> frames) {
    std::vector<std::string_view> v(frames.begin(), frames.end());
    d_->on_message(peer, -1, v);
    flush();
  }
  void advance(int ms) {
    clock_.advance(Millis(ms));
    d_->tick();
    flush();
  }
  // Ends the round as the server loop does, then waits until the writer reported its files.
  void flush() {
    d_->flush();
    d_->wait_files();
  }
  // Lets ms pass in small steps while the named runners keep heartbeating.
  void pass_time(int ms, const std::vector<std::string>& alive) {
    for (int done = 0; done < ms; done += 50) {
      for (const auto& r : alive) deliver(r, msg::Heartbeat{});
      advance(std::min(50, ms - done));
    }
  }
  // Registers a runner and returns nothing; the WELCOME is consumed.
  void add_runner(const std::string& peer, uint32_t capacity = 1, std::vector<uint64_t> held = {}) {
    deliver(peer, msg::Register{peer, capacity, held});
    ASSERT_EQ(out_.take<msg::Welcome>(peer).size(), 1u);
  }
  uint64_t submit(const std::string& peer, int n, bool force = false) {
    deliver(peer, msg::Commit{static_cast<uint64_t>(n), commit_id(n), "main", force});
    auto acc = out_.take<msg::Accepted>(peer);
    EXPECT_EQ(acc.size(), 1u);
    return acc.empty() ? 0 : acc[0].job_id;
  }
  // The status the store holds for a job it must hold.
  msg::JobStatus stored_status(uint64_t id) {
    JobRow row;
    std::string err;
    EXPECT_EQ(store_->job(id, &row, &err), Lookup::kFound) << err;
    return row.summary.status;
  }
  msg::Result result_for(const msg::Job& j, msg::JobStatus st = msg::JobStatus::kPassed) {
    return msg::Result{j.job_id, j.attempt, st, st == msg::JobStatus::kPassed ? 0 : 1,
                       clock_.wall_ms() - 5, clock_.wall_ms(), false, "output of " + j.commit};
  }

  std::filesystem::path dir_;
  FakeClock clock_;
  Config cfg_;
  RecordingOutbox out_;
  std::unique_ptr<Store> store_;
  Syncer* syncer_ = nullptr;  // none: every commit counts as durable at once
  std::unique_ptr<Dispatcher> d_;
};

}  // namespace simpleci::dispatcher
