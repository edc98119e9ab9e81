#include "messages/validate.h"

#include <algorithm>
#include <cctype>

#include "messages/messages.h"

namespace simpleci {

namespace {
bool is_lower_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }
}  // namespace

bool is_commit_id(std::string_view s) {
  return (s.size() == 40 || s.size() == 64) && std::all_of(s.begin(), s.end(), is_lower_hex);
}

std::string normalize_commit_id(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return is_commit_id(out) ? out : std::string();
}

bool is_safe_name(std::string_view s) {
  if (s.empty() || s.size() > msg::kMaxNameLen || s[0] == '.' || s[0] == '-') return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

bool is_valid_branch(std::string_view s) {
  if (s.empty()) return true;
  if (s.size() > msg::kMaxBranchLen || s[0] == '-' || s[0] == '/' || s.back() == '/') return false;
  if (s.find("..") != std::string_view::npos || s.find("//") != std::string_view::npos) return false;
  if (s.size() >= 5 && s.substr(s.size() - 5) == ".lock") return false;
  static constexpr std::string_view kForbidden = " ~^:?*[\\";
  return std::all_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x7f && kForbidden.find(c) == std::string_view::npos;
  });
}

bool is_valid_text(std::string_view s, size_t max_len) {
  return s.size() <= max_len && s.find('\0') == std::string_view::npos;
}

}  // namespace simpleci
