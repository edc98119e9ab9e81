// Making the store's commits durable off the loop thread.
//
// The store runs WAL with synchronous=NORMAL: COMMIT appends the transaction to the <db>-wal file
// in the page cache and returns without flushing anything. A crash of the process alone loses
// nothing (the page cache belongs to the kernel); a power cut loses what was not flushed yet.
// The WalSyncer closes that gap on its own thread: it holds an fd of the -wal file and, when the
// loop reports that a round committed, runs fdatasync on it. fsync on Linux writes back every
// dirty page of the file, whichever descriptor asks, so a flush that began after a COMMIT returned
// covers that transaction; if SQLite checkpointed the frames into the database meanwhile, it
// synced the WAL before the checkpoint and the database after it (it does so at NORMAL too), so
// the transaction is on the disk either way. SQLite keeps the -wal file (same inode) for as long
// as its connection is open, so the fd stays the right file; checkpoints reuse it from the start.
//
// Successive requests coalesce: one flush covers every round that committed before it began.
// A failed flush (EIO, ENOSPC...) means the kernel may have dropped the dirty pages: nothing
// since the last good flush can be promised any more, and the syncer reports the failure for
// good (the dispatcher then exits without sending what waited for it).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace simpleci::dispatcher {

// What the dispatcher's Round (round.h) needs of a syncer (tests hold and release the "durable"
// signal with a fake).
class Syncer {
 public:
  virtual ~Syncer() = default;
  // The round numbered seq (numbers grow) committed: flush it. Called on the loop thread right
  // after COMMIT returned.
  virtual void committed(uint64_t seq) = 0;
  // Readable when durable() may have news; -1 when the caller polls durable() itself.
  virtual int fd() const = 0;
  // *seq: the highest round known to be on the disk (0: none). False (with *err) once a flush
  // failed; it stays false.
  virtual bool durable(uint64_t* seq, std::string* err) = 0;
};

class WalSyncer final : public Syncer {
 public:
  // Opens the database's -wal file (db_path + "-wal"; the store must be open in WAL mode, so the
  // file exists) and flushes its folder once, so the file itself survives a power cut.
  static std::unique_ptr<WalSyncer> open(const std::string& db_path, std::string* err);
  ~WalSyncer() override;  // stops after the flush under way, if any
  WalSyncer(const WalSyncer&) = delete;
  WalSyncer& operator=(const WalSyncer&) = delete;

  void committed(uint64_t seq) override;
  int fd() const override { return event_fd_; }
  bool durable(uint64_t* seq, std::string* err) override;

  // Blocks until every committed() request is flushed (or a flush failed); test and shutdown aid.
  bool wait_idle(std::string* err);

 private:
  WalSyncer(int wal_fd, int event_fd);
  void run();

  int wal_fd_ = -1;
  int event_fd_ = -1;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t requested_ = 0, done_ = 0;
  bool failed_ = false, stop_ = false;
  std::string error_;
  std::thread thread_;
};

}  // namespace simpleci::dispatcher
