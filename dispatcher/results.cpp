#include "dispatcher/results.h"

#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "common/fsutil.h"
#include "messages/summary_json.h"
#include "messages/validate.h"

namespace simpleci::dispatcher {

namespace fs = std::filesystem;

std::string result_json(const msg::JobSummary& s) {
  return msg::json_text(msg::summary_json(s)) + "\n";
}

std::string result_name(const std::string& repo, const std::string& commit, const std::string& job) {
  if (!is_commit_id(commit) || (!repo.empty() && !is_safe_name(repo)) || (!job.empty() && !is_safe_name(job))) {
    return "";
  }
  std::string name = repo.empty() ? commit : repo + "/" + commit;
  if (!job.empty()) name += "/" + job;
  return name;
}

bool write_result_files(const std::filesystem::path& dir, const msg::JobSummary& s,
                        const std::string& output, bool durable, std::string* err) {
  const std::string name = result_name(s);
  if (name.empty()) {
    *err = "refusing to write results for a bad commit id, repository or job name";
    return false;
  }
  const fs::path out = dir / name;
  auto write_both = [&] {
    return write_file_atomic(out, output, durable, err) &&
           write_file_atomic(out.string() + ".json", result_json(s), durable, err);
  };
  if (write_both()) return true;
  // The folder was removed (say, to clear old results), or a repository's or commit's folder is
  // not made yet: make each missing level (owner and group only) and retry once.
  std::error_code ec;
  if (fs::exists(out.parent_path(), ec)) return false;
  auto make = [&](const fs::path& level) {
    if (fs::exists(level, ec)) return true;
    if (!fs::create_directories(level, ec)) return false;
    fs::permissions(level, fs::perms(kResultsDirMode), ec);
    return true;
  };
  if (!make(dir)) return false;
  fs::path level = dir;
  for (const fs::path& part : fs::path(name).parent_path()) {
    if (!make(level /= part)) return false;
  }
  return write_both();
}

bool remove_result_files(const std::filesystem::path& dir, const std::string& job_name,
                         std::string* err) {
  if (job_name.empty() || job_name.find("..") != std::string::npos || job_name.front() == '/') {
    *err = "refusing to remove results of a bad job name";
    return false;
  }
  for (const std::string& name : {job_name, job_name + ".json"}) {
    std::error_code ec;
    fs::remove(dir / name, ec);  // false without error when it is not there
    if (ec) {
      *err = "cannot remove '" + (dir / name).string() + "': " + ec.message();
      return false;
    }
  }
  return true;
}

namespace {

// <commit>.tmp.* or <commit>.json.tmp.* (or <job>... inside a repository's or commit's folder,
// `nested`): what write_file_atomic leaves when interrupted.
bool is_leftover_temp(const std::string& name, bool nested) {
  const size_t at = name.find(".tmp.");
  if (at == std::string::npos) return false;
  std::string base = name.substr(0, at);
  if (base.ends_with(".json")) base.resize(base.size() - 5);
  return is_commit_id(base) || (nested && is_safe_name(base));
}

// True when <dir>/<name> exists with exactly `content`.
bool file_equals(const fs::path& path, const std::string& content) {
  std::string have, err;
  return read_file(path, content.size(), &have, &err) && have == content;
}

}  // namespace

bool reconcile_results(JobStore& store, const std::filesystem::path& dir, bool durable,
                       ReconcileStats* stats, std::string* err) {
  std::error_code ec;
  // Three levels: <repo>/<commit>/<job>.
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it.depth() >= 2) it.disable_recursion_pending();
    if (it->is_regular_file(ec) && is_leftover_temp(it->path().filename().string(), it.depth() > 0) &&
        fs::remove(it->path(), ec)) {
      ++stats->temps_removed;
    }
  }
  std::string output;
  return store.for_each_file_owner(
      [&](const FinalJob& f) {
        ++stats->checked;
        const std::string name = result_name(f.summary);
        const fs::path out_path = dir / name;
        std::error_code size_ec;
        const uintmax_t size = fs::file_size(out_path, size_ec);
        if (!name.empty() && !size_ec && size == f.output_bytes &&
            file_equals(dir / (name + ".json"), result_json(f.summary))) {
          return true;
        }
        std::string why;
        if (!store.output(f.summary.job_id, &output, &why) ||
            !write_result_files(dir, f.summary, output, durable, &why)) {
          ++stats->failed;
          stats->failed_jobs.emplace_back(name, f.summary.job_id);
          spdlog::error("cannot rewrite the result files of job {}: {}", f.summary.job_id, why);
          return true;
        }
        ++stats->rewritten;
        return true;
      },
      err);
}

}  // namespace simpleci::dispatcher

