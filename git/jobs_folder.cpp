#include "git/jobs_folder.h"

#include <algorithm>
#include <charconv>
#include <memory>

#include "git/git.h"
#include "messages/limits.h"
#include "messages/validate.h"

namespace simpleci::git {

namespace {

constexpr std::string_view kPrefix = "# simpleci:";
constexpr size_t kMaxQuoted = 64;  // a bad value is quoted up to this many bytes

// A value from the file, made safe to put in one line of text: cut, control bytes as '?'.
std::string quoted(std::string_view s) {
  std::string out(s.substr(0, kMaxQuoted));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  if (s.size() > kMaxQuoted) out += "...";
  return "'" + out + "'";
}

// The lines of text, without their end of line ("\n" or "\r\n"), at most max of them.
std::vector<std::string_view> first_lines(std::string_view text, int max) {
  std::vector<std::string_view> lines;
  while (!text.empty() && static_cast<int>(lines.size()) < max) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return lines;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    const size_t at = s.find(sep, start);
    parts.push_back(s.substr(start, at == std::string_view::npos ? std::string_view::npos : at - start));
    if (at == std::string_view::npos) return parts;
    start = at + 1;
  }
}

// "" when value is a good label list (then *labels holds it), else what is wrong.
std::string parse_labels(std::string_view value, std::vector<std::string>* labels) {
  if (value.empty()) return "labels: no label given";
  for (std::string_view l : split(value, ',')) {
    if (!is_safe_name(l)) return "labels: not a valid label " + quoted(l);
    if (std::find(labels->begin(), labels->end(), l) != labels->end()) {
      return "labels: " + quoted(l) + " is given twice";
    }
    labels->emplace_back(l);
  }
  if (labels->size() > msg::kMaxJobLabels) {
    return "labels: " + std::to_string(labels->size()) + " labels; at most " + std::to_string(msg::kMaxJobLabels);
  }
  return "";
}

std::string parse_timeout(std::string_view value, uint32_t* timeout_s) {
  uint64_t n = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
  if (value.empty() || ec != std::errc() || end != value.data() + value.size() || n < 1 || n > msg::kMaxTimeoutS) {
    return "timeout: not a number of seconds between 1 and " + std::to_string(msg::kMaxTimeoutS) + ": " +
           quoted(value);
  }
  *timeout_s = static_cast<uint32_t>(n);
  return "";
}

// "" when every setting of the line (after the prefix) is good, else what is wrong.
std::string parse_settings(std::string_view line, JobSettings* s) {
  bool have_labels = false, have_timeout = false;
  for (std::string_view token : split(line, ' ')) {
    if (token.empty()) continue;  // several spaces
    const size_t eq = token.find('=');
    const std::string_view key = token.substr(0, eq);
    const std::string_view value = eq == std::string_view::npos ? "" : token.substr(eq + 1);
    bool* seen = key == "labels" ? &have_labels : key == "timeout" ? &have_timeout : nullptr;
    if (eq == std::string_view::npos || seen == nullptr) return "unknown setting " + quoted(token);
    if (*seen) return "setting '" + std::string(key) + "' is given twice";
    *seen = true;
    std::string problem = key == "labels" ? parse_labels(value, &s->labels) : parse_timeout(value, &s->timeout_s);
    if (!problem.empty()) return problem;
  }
  return "";
}

}  // namespace

JobSettings parse_job_settings(std::string_view path, std::string_view text) {
  JobSettings s;
  int found_at = 0;
  const auto lines = first_lines(text, kSettingsLines);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (!lines[i].starts_with(kPrefix)) continue;
    const int number = static_cast<int>(i) + 1;
    std::string problem;
    if (found_at != 0) {
      problem = "a second settings line (the first is line " + std::to_string(found_at) + ")";
    } else {
      found_at = number;
      problem = parse_settings(lines[i].substr(kPrefix.size()), &s);
    }
    if (!problem.empty()) {
      JobSettings bad;
      bad.problem = std::string(path) + " line " + std::to_string(number) + ": " + problem;
      return bad;
    }
  }
  return s;
}

namespace {

struct Freer {
  void operator()(git_commit* c) const { git_commit_free(c); }
  void operator()(git_tree* t) const { git_tree_free(t); }
  void operator()(git_tree_entry* e) const { git_tree_entry_free(e); }
  void operator()(git_blob* b) const { git_blob_free(b); }
};
template <class T> using Owned = std::unique_ptr<T, Freer>;

// Why an entry of the jobs folder is not a job; "" when it is one.
std::string not_a_job(const git_tree_entry* e, std::string_view name) {
  if (!is_safe_name(name)) return "not a safe name (1-64 of A-Z a-z 0-9 . _ -, not starting with . or -)";
  switch (git_tree_entry_filemode(e)) {
    case GIT_FILEMODE_BLOB_EXECUTABLE: return "";
    case GIT_FILEMODE_BLOB: return "not executable";
    case GIT_FILEMODE_TREE: return "a folder";
    case GIT_FILEMODE_LINK: return "a symbolic link";
    default: return "not a regular file";
  }
}

}  // namespace

bool read_jobs_folder(git_repository* repo, const git_oid& commit_id, JobsFolder* out, std::string* err) {
  *out = JobsFolder{};
  git_commit* c = nullptr;
  if (git_commit_lookup(&c, repo, &commit_id) != 0) {
    *err = error("cannot read commit " + oid_text(&commit_id));
    return false;
  }
  Owned<git_commit> commit(c);
  git_tree* t = nullptr;
  if (git_commit_tree(&t, commit.get()) != 0) {
    *err = error("cannot read the tree of " + oid_text(&commit_id));
    return false;
  }
  Owned<git_tree> root(t);
  git_tree_entry* fe = nullptr;
  const std::string folder(kJobsFolder);
  if (git_tree_entry_bypath(&fe, root.get(), folder.c_str()) != 0) return true;  // no folder
  Owned<git_tree_entry> folder_entry(fe);
  if (git_tree_entry_type(folder_entry.get()) != GIT_OBJECT_TREE) {
    out->notes.push_back(folder + " is not a folder; the commit runs as one job");
    return true;
  }
  if (git_tree_lookup(&t, repo, git_tree_entry_id(folder_entry.get())) != 0) {
    *err = error("cannot read " + folder);
    return false;
  }
  Owned<git_tree> jobs(t);
  for (size_t i = 0; i < git_tree_entrycount(jobs.get()); ++i) {
    const git_tree_entry* e = git_tree_entry_byindex(jobs.get(), i);
    const std::string name = git_tree_entry_name(e);
    const std::string path = folder + "/" + name;
    if (std::string why = not_a_job(e, name); !why.empty()) {
      out->notes.push_back(folder + "/" + quoted(name) + " is skipped: " + why);
      continue;
    }
    git_blob* b = nullptr;
    if (git_blob_lookup(&b, repo, git_tree_entry_id(e)) != 0) {
      *err = error("cannot read " + path);
      return false;
    }
    Owned<git_blob> blob(b);
    const std::string_view text(static_cast<const char*>(git_blob_rawcontent(blob.get())),
                                static_cast<size_t>(git_blob_rawsize(blob.get())));
    JobSettings s = parse_job_settings(path, text);
    out->jobs.push_back(msg::JobSpec{name, std::move(s.labels), s.timeout_s, std::move(s.problem)});
  }
  const size_t n = out->jobs.size();
  if (n > msg::kMaxJobsPerCommit) {
    out->jobs.resize(msg::kMaxJobsPerCommit);
    const std::string problem = "the commit has " + std::to_string(n) + " jobs in " + folder + "; at most " +
                                std::to_string(msg::kMaxJobsPerCommit);
    for (auto& j : out->jobs) j = msg::JobSpec{j.name, {}, 0, problem};
  }
  return true;
}

}  // namespace simpleci::git
