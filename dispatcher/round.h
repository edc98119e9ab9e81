// Round: what one poll round sends, and when. It answers "which replies may leave now, and which
// wait for the disk".
//
// Everything one round changes in the store is one transaction; its replies are collected here
// (send_later) and leave at its end. Replies that promise nothing a crash could take back (JOB,
// CANCEL_JOB, HEARTBEAT, WELCOME, REREGISTER, the STATUS, RESULTS and WATCH replies) go right
// after the COMMIT; ACCEPTED, RESULT_ACK, OK and ERROR, and the round's result files, are held
// until the Syncer reports a flush that began after the round's COMMIT (an ERROR never overtakes
// a held reply to the same peer). It owns this round's replies, the peers with an output-carrying
// reply among them, the committed rounds waiting for their flush (oldest first) and the round
// numbers committed and known durable. Result files themselves are PendingFiles' business.
// Without a syncer every commit counts as durable at once (an in-memory or test store).
#pragma once

#include <cstdint>
#include <deque>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "dispatcher/config.h"
#include "dispatcher/pending_files.h"
#include "dispatcher/walsync.h"

namespace simpleci::dispatcher {

class Round {
 public:
  Round(Outbox& out, Syncer* syncer, PendingFiles& files, Counters& counters)
      : out_(out), syncer_(syncer), files_(files), counters_(counters) {}

  // A reply of this round, sent at its end (or once it is durable).
  void send_later(std::string_view peer, msg::Message m);
  // A feed message encoded once for many peers, sent after the round's commit like EVENT.
  void send_shared_later(std::string_view peer, SharedBody b);
  // True while this round holds an output-carrying reply to peer.
  bool output_pending(std::string_view peer) const { return output_pending_.contains(peer); }

  // The round's transaction committed (`wrote`: it changed the store; false when there was
  // nothing to commit): replies that need no flush go, the rest wait with the round's files.
  void committed(bool wrote);
  // The round's transaction failed and was rolled back: ACCEPTED, OK and SNAPSHOT become ERROR
  // storage_failure (the requester retries), JOB and RESULT_ACK are dropped (the runner re-sends
  // its result; a job not dispatched stays queued), and so are EVENTs (they told of what was
  // rolled back: subscribers see a seq gap and subscribe again); the rest go as usual; its files
  // are dropped.
  void failed();
  // Peers a feed message (EVENT, JOB_OUTPUT, SNAPSHOT) could not be sent to since the last call:
  // their connection is gone (or their queue full).
  std::vector<std::string> take_unsent_feed() { return std::exchange(unsent_feed_, {}); }

  // Readable when the syncer has news: then call on_synced(). -1 without a syncer.
  int syncer_fd() const { return syncer_ ? syncer_->fd() : -1; }
  // Releases the rounds the syncer reports durable. False once a flush failed: logged once, the
  // held replies are dropped unsent, and it stays so (sync_failed()).
  bool on_synced();
  bool sync_failed() const { return sync_failed_; }
  // Waits until every held round is durable (or a flush failed).
  void finish();
  size_t held_rounds() const { return held_.size(); }
  // Output bytes of the held rounds' files.
  size_t held_bytes() const { return held_bytes_; }

 private:
  struct Reply {
    std::string peer;
    std::variant<msg::Message, SharedBody> what;
  };
  struct Held {  // a committed round waiting for its flush
    uint64_t seq = 0;
    std::vector<Reply> replies;
    ResultWriter::Batch files;
  };
  std::vector<Reply> take_replies();
  void hold_or_send(std::vector<Reply> out, ResultWriter::Batch files);
  void hold(std::vector<Reply> later, ResultWriter::Batch files);
  void release(std::vector<Reply>& replies, ResultWriter::Batch files);
  void send_now(const Reply& r);

  Outbox& out_;
  Syncer* syncer_;
  PendingFiles& files_;
  Counters& counters_;
  std::vector<Reply> replies_;                          // this round's
  std::set<std::string, std::less<>> output_pending_;  // peers with an output reply in replies_
  std::deque<Held> held_;                               // oldest first
  std::vector<std::string> unsent_feed_;                // see take_unsent_feed()
  size_t held_bytes_ = 0;
  uint64_t committed_seq_ = 0;  // the newest round that committed
  uint64_t durable_seq_ = 0;    // the newest round the syncer reported on the disk
  bool sync_failed_ = false;
};

}  // namespace simpleci::dispatcher
