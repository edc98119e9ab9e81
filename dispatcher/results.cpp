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

bool write_result_files(const std::filesystem::path& dir, const msg::JobSummary& s,
                        const std::string& output, bool durable, std::string* err) {
  if (!is_commit_id(s.commit)) {
    *err = "refusing to write results for a bad commit id";
    return false;
  }
  auto write_both = [&] {
    return write_file_atomic(dir / s.commit, output, durable, err) &&
           write_file_atomic(dir / (s.commit + ".json"), result_json(s), durable, err);
  };
  if (write_both()) return true;
  // Someone removed the folder (say, to clear old results): make it again and retry once.
  std::error_code ec;
  if (fs::exists(dir, ec) || !fs::create_directories(dir, ec)) return false;
  fs::permissions(dir, fs::perms(kResultsDirMode), ec);
  return write_both();
}

bool remove_result_files(const std::filesystem::path& dir, const std::string& commit,
                         std::string* err) {
  if (!is_commit_id(commit)) {
    *err = "refusing to remove results of a bad commit id";
    return false;
  }
  for (const std::string& name : {commit, commit + ".json"}) {
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

// <commit>.tmp.* or <commit>.json.tmp.*: what write_file_atomic leaves when interrupted.
bool is_leftover_temp(const std::string& name) {
  const size_t at = name.find(".tmp.");
  if (at == std::string::npos) return false;
  std::string base = name.substr(0, at);
  if (base.ends_with(".json")) base.resize(base.size() - 5);
  return is_commit_id(base);
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
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (is_leftover_temp(it->path().filename().string()) && fs::remove(it->path(), ec)) {
      ++stats->temps_removed;
    }
  }
  std::string output;
  return store.for_each_file_owner(
      [&](const FinalJob& f) {
        ++stats->checked;
        const fs::path out_path = dir / f.summary.commit;
        std::error_code size_ec;
        const uintmax_t size = fs::file_size(out_path, size_ec);
        if (!size_ec && size == f.output_bytes &&
            file_equals(dir / (f.summary.commit + ".json"), result_json(f.summary))) {
          return true;
        }
        std::string why;
        if (!store.output(f.summary.job_id, &output, &why) ||
            !write_result_files(dir, f.summary, output, durable, &why)) {
          ++stats->failed;
          stats->failed_jobs.emplace_back(f.summary.commit, f.summary.job_id);
          spdlog::error("cannot rewrite the result files of job {}: {}", f.summary.job_id, why);
          return true;
        }
        ++stats->rewritten;
        return true;
      },
      err);
}

}  // namespace simpleci::dispatcher

