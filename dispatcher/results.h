// Result files under --results-dir: <name> holds the output, <name>.json the summary, where a
// job's name is <commit> (the original flow), <repo>/<commit> (a named repository's job) or
// [<repo>/]<commit>/<job> (a named job, .simpleci/jobs/<job>).
//
// The files are a view of the store, never the record: they are written after the job's
// transaction committed, a failed write is retried (PendingFiles), and at start reconcile_results()
// rewrites whatever is missing or differs from the store. The thread that writes them during
// normal work is the ResultWriter (result_writer.h).
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "dispatcher/job_store.h"
#include "messages/messages.h"

namespace simpleci::dispatcher {

// Mode of a results folder the dispatcher creates: owner and group may read (a web server put
// in the dispatcher's group can serve the files), others get nothing, nobody else writes.
inline constexpr unsigned kResultsDirMode = 0750;

// The summary document written beside the output (keys listed in PROTOCOL.md).
std::string result_json(const msg::JobSummary& s);

// A job's file name under the results folder (see above); "" when a part is not a valid commit
// id or safe name, so nothing from the wire chooses a path.
std::string result_name(const std::string& repo, const std::string& commit, const std::string& job);
inline std::string result_name(const msg::JobSummary& s) { return result_name(s.repo, s.commit, s.job_name); }

// Writes both files atomically (temporary file + rename; with durable, each file and the folder
// are fsync'ed too) under result_name(s); a job without a valid name is refused. A folder
// removed meanwhile, or not made yet, is made.
bool write_result_files(const std::filesystem::path& dir, const msg::JobSummary& s,
                        const std::string& output, bool durable, std::string* err);

// Removes both files of a job name (a pruned job's). Files that are already gone are fine.
bool remove_result_files(const std::filesystem::path& dir, const std::string& name,
                         std::string* err);

struct ReconcileStats {
  size_t checked = 0;        // commits whose newest final job owns files
  size_t rewritten = 0;      // of those, files missing or different, written again
  size_t failed = 0;         // could not be written (logged; the dispatcher retries them)
  std::vector<std::pair<std::string, uint64_t>> failed_jobs;  // (result name, job id) of those
  size_t temps_removed = 0;  // leftover <name>.tmp.* files of an interrupted write
};

// Start-up pass: removes leftover temporary files of interrupted writes, then, for every
// commit's newest final job that is not pruned, compares <commit>'s size with the stored
// output's and <commit>.json with the summary, and rewrites both when either differs or is
// missing. Streams the store (one output in memory at a time). False with *err only when the
// store cannot be read; a file that cannot be written is counted in stats->failed.
bool reconcile_results(JobStore& store, const std::filesystem::path& dir, bool durable,
                       ReconcileStats* stats, std::string* err);

}  // namespace simpleci::dispatcher

