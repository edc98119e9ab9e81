// RunnerRegistry: the runners with a live session, and which runner gets the next job. It answers
// "which runners exist, where do they listen, and what do they hold".
//
// It owns one Runner per registered name (its peer routing id, connection, capacity, the jobs it
// holds, when it was last heard from and sent to, draining, paused after setup failures), the
// index from routing id to name, and the round-robin start that spreads work. Each session is
// listed under its name and its routing id, and under no other. Which jobs a runner holds is
// written here by the Dispatcher, which keeps it in step with the JobQueue's running set.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.h"

namespace simpleci::dispatcher {

struct Runner {
  std::string name, peer;
  int fd = -1;
  uint32_t capacity = 1;
  std::set<uint64_t> jobs;
  SteadyTime last_seen{}, last_sent{};
  int64_t last_seen_wall = 0;
  bool draining = false;
  uint32_t setup_failures = 0;  // in a row; reset by any other result
  SteadyTime paused_until{};    // gets no jobs before this (after repeated setup failures)
  std::set<std::string> labels{};  // what it has (REGISTER), automatic ones included
  bool serves_unnamed = true;      // has a clone of the unnamed repository
  bool serves_all = false;         // serves every declared repository (--cache)
};

// What a job needs of a runner: to serve its repository and have all its labels.
struct Needs {
  const std::string& repo;
  const std::vector<std::string>& labels;
};
bool can_take(const Runner& r, const Needs& n);

// What STATUS, the feed and the metrics call a runner's state at `now`: "draining", "paused",
// "idle" or "busy".
const char* runner_state(const Runner& r, SteadyTime now);

class RunnerRegistry {
 public:
  using Map = std::map<std::string, Runner, std::less<>>;

  // The session of the runner at this routing id; nullptr for a peer that is not a runner.
  Runner* session(std::string_view peer);
  Runner* find(std::string_view name);
  // The runner whose connection has this file descriptor, if any.
  std::optional<std::string> name_on_fd(int fd) const;

  // A new session for `name` at `peer` (last heard from and sent to now), replacing any earlier
  // session of that name; *previous receives the jobs the earlier session held.
  Runner& add(const std::string& name, std::string_view peer, int fd, uint32_t capacity,
              SteadyTime now, int64_t wall_ms, std::set<uint64_t>* previous);
  // Ends a runner's session; false when it has none. *jobs receives the jobs it held.
  bool remove(const std::string& name, std::set<uint64_t>* jobs);
  // The runner (if it has a session) no longer holds the job.
  void release(const std::string& name, uint64_t job_id);
  // Every session forgets its jobs (the store is being loaded again).
  void clear_jobs();

  // The free runner for a job that needs `needs` and could not be set up on the runners in
  // `avoid`: one that can take it (can_take), not draining or paused, with a free slot, the
  // fewest jobs, the search starting at a rotating point. A runner in `avoid` is taken only when
  // no other runner that can take the job is up.
  Runner* pick(const Needs& needs, const std::set<std::string>& avoid, SteadyTime now);
  // Whether any runner could start a job now (not draining or paused, a slot free).
  bool any_free(SteadyTime now) const;
  // Moves the rotating start on (after a job went to a runner).
  void rotate() { ++rr_; }

  Map& all() { return runners_; }
  const Map& all() const { return runners_; }
  size_t size() const { return runners_.size(); }

 private:
  Map runners_;                                         // by name
  std::unordered_map<std::string, std::string> peers_;  // routing id -> runner name
  size_t rr_ = 0;                                       // round-robin start for spreading work
};

}  // namespace simpleci::dispatcher
