// A runner's labels (docs/MULTI.md "Names"): the automatic ones, from what uname and the host
// name say, and the ones given with --labels. Pure functions, so a test can feed any machine.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace simpleci::runner {

// What the automatic labels are made of (uname's sysname and machine, gethostname).
struct MachineFacts {
  std::string os;        // "Linux"
  std::string machine;   // "x86_64"
  std::string hostname;  // "build-3.example.org"
};

// Debian's name for the machine uname -m reports when it names it otherwise (x86_64 -> amd64,
// aarch64 -> arm64, armv7l -> armhf, i686 -> i386, ...); "" when the names agree or it is unknown.
std::string debian_arch(std::string_view machine);

// The automatic labels, in this order: the OS in lower case, the machine, its Debian name when
// that differs, and host-<hostname cut at the first '.'>. Characters outside [A-Za-z0-9._-]
// become '-' and each is cut to a safe name's length; a fact that is empty (or can make no safe
// name) gives no label.
std::vector<std::string> automatic_labels(const MachineFacts& m);

// The labels a runner advertises: the automatic ones (unless with_automatic is false), then the
// comma-separated `given` (--labels), duplicates dropped, first occurrence kept. False with a
// one-line *err for an empty or unsafe label, or more than msg::kMaxLabels in all.
bool runner_labels(const std::string& given, const MachineFacts& m, bool with_automatic,
                   std::vector<std::string>* out, std::string* err);

}  // namespace simpleci::runner
