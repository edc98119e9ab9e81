#include "runner/labels.h"

#include <algorithm>
#include <cctype>

#include "messages/limits.h"
#include "messages/validate.h"

namespace simpleci::runner {

namespace {

bool safe_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
}

// s with unsafe characters replaced by '-', lowered when asked, cut to a name's length; "" when
// even that is no safe name (it starts with '.' or '-').
std::string to_name(std::string_view s, bool lower) {
  std::string out;
  for (char c : s.substr(0, msg::kMaxNameLen)) {
    if (!safe_char(c)) c = '-';
    out += lower ? static_cast<char>(std::tolower(static_cast<unsigned char>(c))) : c;
  }
  return is_safe_name(out) ? out : "";
}

void add_once(std::vector<std::string>* labels, const std::string& label) {
  if (std::find(labels->begin(), labels->end(), label) == labels->end()) labels->push_back(label);
}

}  // namespace

std::string debian_arch(std::string_view machine) {
  static constexpr std::pair<std::string_view, std::string_view> kAliases[] = {
      {"x86_64", "amd64"}, {"aarch64", "arm64"},  {"armv8l", "armhf"}, {"armv7l", "armhf"},
      {"armv6l", "armel"}, {"armv5tel", "armel"}, {"i486", "i386"},    {"i586", "i386"},
      {"i686", "i386"},    {"ppc64le", "ppc64el"}, {"loongarch64", "loong64"},
  };
  for (const auto& [uname, debian] : kAliases) {
    if (machine == uname) return std::string(debian);
  }
  return "";
}

std::vector<std::string> automatic_labels(const MachineFacts& m) {
  std::vector<std::string> labels;
  for (const std::string& label : {to_name(m.os, true), to_name(m.machine, false), debian_arch(m.machine)}) {
    if (!label.empty()) add_once(&labels, label);
  }
  const std::string_view host = std::string_view(m.hostname).substr(0, m.hostname.find('.'));
  if (!host.empty()) {
    const std::string label = to_name("host-" + std::string(host), false);
    if (!label.empty()) add_once(&labels, label);
  }
  return labels;
}

bool runner_labels(const std::string& given, const MachineFacts& m, bool with_automatic,
                   std::vector<std::string>* out, std::string* err) {
  std::vector<std::string> labels;
  if (with_automatic) labels = automatic_labels(m);
  for (size_t at = 0; !given.empty() && at <= given.size();) {
    const size_t comma = std::min(given.find(',', at), given.size());
    const std::string label = given.substr(at, comma - at);
    if (!is_safe_name(label)) {
      *err = "--labels: '" + label + "' is not a label (1-" + std::to_string(msg::kMaxNameLen) +
             " of A-Z a-z 0-9 . _ -, not starting with . or -) in '" + given + "'";
      return false;
    }
    add_once(&labels, label);
    at = comma + 1;
  }
  if (labels.size() > msg::kMaxLabels) {
    *err = "--labels: a runner has at most " + std::to_string(msg::kMaxLabels) + " labels, the automatic ones " +
           "included; this one would have " + std::to_string(labels.size());
    return false;
  }
  *out = std::move(labels);
  return true;
}

}  // namespace simpleci::runner
