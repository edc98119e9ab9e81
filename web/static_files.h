// The page's files (web/static/), compiled into simpleci-web by web/embed.cmake, and how they
// are served.
#pragma once

#include <string_view>

namespace simpleci::web {

struct StaticFile {
  std::string_view path;  // relative to web/static/, e.g. "index.html", "js/app.js"
  std::string_view data;
  std::string_view etag;  // quoted, as the ETag header carries it
};

// The table, ended by an entry with an empty path.
const StaticFile* static_files();

// The file at a path relative to web/static/; nullptr when there is none.
const StaticFile* find_static(std::string_view path);

// Content-Type by extension (application/octet-stream for one it does not know).
std::string_view content_type(std::string_view path);

}  // namespace simpleci::web
