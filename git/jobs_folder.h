// A commit's named jobs: the executables in .simpleci/jobs/ of its tree, each with the settings
// of its "# simpleci:" line (docs/MULTI.md "Names" and "The settings line"). Read from the
// commit's tree with libgit2, without a checkout, by the observer and by `simpleci submit`.
#pragma once

#include <git2.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "messages/bodies.h"

namespace simpleci::git {

inline constexpr std::string_view kJobsFolder = ".simpleci/jobs";
inline constexpr int kSettingsLines = 10;  // the settings line is looked for in this many lines

// What a job file's settings line asks for. problem is "" when the line is absent or good;
// otherwise one line "<path> line <n>: <what>" and labels/timeout_s are left empty.
struct JobSettings {
  std::vector<std::string> labels;
  uint32_t timeout_s = 0;  // 0: none given
  std::string problem;
};

// Reads the settings line of a job file (path is how the problem names the file, e.g.
// ".simpleci/jobs/build"; text is the file's content, or at least its first lines). Within the
// first kSettingsLines lines, the first line starting with "# simpleci:" holds space-separated
// key=value settings: labels=a,b (1..kMaxJobLabels safe names, no repeats) and timeout=N
// (1..kMaxTimeoutS seconds). An unknown key, a bad value, a key given twice or a second settings
// line within those lines is a problem. Pure: no I/O.
JobSettings parse_job_settings(std::string_view path, std::string_view text);

struct JobsFolder {
  // The jobs, by name (the tree's order). Empty: the commit runs as one unnamed job.
  std::vector<msg::JobSpec> jobs;
  // Entries that are not jobs and why ("... is skipped: ..."), for the caller to log.
  std::vector<std::string> notes;
};

// Reads .simpleci/jobs/ of commit's tree in repo. A job is an entry directly in that folder that
// is a blob with the executable mode and whose name is a safe name; anything else (a folder, a
// plain file, a symbolic link, an unsafe name) gets a note. No folder: no jobs, no note. More
// than kMaxJobsPerCommit jobs: the first kMaxJobsPerCommit are kept and every one carries the
// problem "the commit has N jobs; at most 32" (the dispatcher ends them as errors, so the author
// sees why). False with a one-line *err when the commit or a blob cannot be read.
bool read_jobs_folder(git_repository* repo, const git_oid& commit, JobsFolder* out, std::string* err);

}  // namespace simpleci::git
