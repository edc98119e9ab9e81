// A JobStore that passes every call to a real Store, except those a test makes fail: a commit
// that fails (as on a full disk), or reads that fail (as on a corrupt page). The seam that gives
// the Dispatcher's failure branches unit tests without root or a broken disk.
#pragma once

#include <string>
#include <vector>

#include "dispatcher/store.h"

namespace simpleci::dispatcher {

class FaultyStore final : public JobStore {
 public:
  Store* real = nullptr;
  bool fail_commit = false;  // commit() rolls back and fails
  bool fail_reads = false;   // every read fails (writes still work)

  bool begin(std::string* err) override { return real->begin(err); }
  bool commit(std::string* err) override {
    if (!fail_commit) return real->commit(err);
    real->rollback();
    *err = "disk full (injected)";
    return false;
  }
  void rollback() override { real->rollback(); }
  bool in_transaction() const override { return real->in_transaction(); }
  uint64_t insert(const msg::JobSummary& s, uint32_t timeout_s, std::string* err) override {
    return real->insert(s, timeout_s, err);
  }
  bool mark_running(uint64_t id, uint32_t attempt, const std::string& runner, int64_t started_ms,
                    std::string* err) override {
    return real->mark_running(id, attempt, runner, started_ms, err);
  }
  bool requeue(uint64_t id, int64_t pos, std::string* err) override {
    return real->requeue(id, pos, err);
  }
  bool finish(const msg::JobSummary& s, const std::string& output, std::string* err) override {
    return real->finish(s, output, err);
  }
  bool for_each_active(const std::function<bool(const JobRow&)>& fn, std::string* err) override {
    return real->for_each_active(fn, err);
  }
  Lookup job(uint64_t id, JobRow* row, std::string* err) override {
    return fail_reads ? read_failed(err) : real->job(id, row, err);
  }
  Lookup latest_for_commit(const std::string& repo, const std::string& commit, JobRow* row,
                           std::string* err) override {
    return fail_reads ? read_failed(err) : real->latest_for_commit(repo, commit, row, err);
  }
  bool recent(const std::string& commit, uint32_t limit, bool by_repo, const std::string& repo,
              std::vector<msg::JobSummary>* out, std::string* err) override {
    if (fail_reads) return read_failed(err) == Lookup::kFound;
    return real->recent(commit, limit, by_repo, repo, out, err);
  }
  bool jobs(const JobFilter& f, std::vector<msg::JobSummary>* out, std::string* err) override {
    if (fail_reads) return read_failed(err) == Lookup::kFound;
    return real->jobs(f, out, err);
  }
  bool read_output(uint64_t id, uint64_t offset, uint64_t max, std::string* out, uint64_t* total,
                   std::string* err) override {
    if (fail_reads) return read_failed(err) == Lookup::kFound;
    return real->read_output(id, offset, max, out, total, err);
  }
  bool min_queue_pos(int64_t* pos, std::string* err) override {
    if (fail_reads) return read_failed(err) == Lookup::kFound;
    return real->min_queue_pos(pos, err);
  }
  bool for_each_file_owner(const std::function<bool(const FinalJob&)>& fn,
                           std::string* err) override {
    return real->for_each_file_owner(fn, err);
  }
  bool prune(int64_t finished_before_ms, size_t limit, std::vector<PrunedJob>* out,
             std::string* err) override {
    return real->prune(finished_before_ms, limit, out, err);
  }
  bool newest_final(const std::string& repo, const std::string& commit, const std::string& job_name,
                    uint64_t* id, std::string* err) override {
    return real->newest_final(repo, commit, job_name, id, err);
  }

 private:
  static Lookup read_failed(std::string* err) {
    *err = "database disk image is malformed (injected)";
    return Lookup::kError;
  }
};

}  // namespace simpleci::dispatcher
