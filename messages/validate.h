// Checks for strings that come from outside (the wire, flags, files) before they are used.
#pragma once

#include <string>
#include <string_view>

namespace simpleci {

// A commit id is 40 (SHA-1) or 64 (SHA-256) lowercase hex characters. Nothing else is ever
// used to build a result file name.
bool is_commit_id(std::string_view s);

// Lowercases an id given by a person (CLI); returns "" when it is not a commit id afterwards.
std::string normalize_commit_id(std::string_view s);

// Runner / observer / key names: 1..64 of [A-Za-z0-9._-], not starting with '.' or '-'.
// Safe to use as a single path component.
bool is_safe_name(std::string_view s);

// Branch names: empty, or 1..255 printable ASCII without space, '~', '^', ':', '?', '*', '[',
// '\\', no ".." or "//", not starting with '-' or '/', not ending with '/' or ".lock".
bool is_valid_branch(std::string_view s);

// Free text (commands, error text): no NUL, at most max_len bytes.
bool is_valid_text(std::string_view s, size_t max_len);

}  // namespace simpleci
