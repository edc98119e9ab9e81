// app::Component: ranged flags and --log-level are usage errors (2) found by parse(); a log
// folder that cannot be created is a runtime failure (1) found by start().
// (Here, in the executables' test folder, as app/ has no test folder of its own.)
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "app/component.h"

namespace simpleci::app {
namespace {

namespace fs = std::filesystem;

cli::Stop parse(Component& c, std::vector<std::string> args) {
  args.insert(args.begin(), "prog");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return c.parse(static_cast<int>(argv.size()), argv.data());
}

TEST(Component, RangedFlagsShowTheirRangeAndAreChecked) {
  Component c("prog", "about", "prog.log");
  int64_t n = 5;
  CLI::Option* o = c.add_ranged("--n", n, "things", 1, 9);
  EXPECT_EQ(o->get_description(), "things (1..9)");
  EXPECT_EQ(parse(c, {"--n", "9"}), std::nullopt);
  EXPECT_EQ(n, 9);
  Component d("prog", "about", "prog.log");
  d.add_ranged("--n", n, "things", 1, 9);
  EXPECT_EQ(parse(d, {"--n", "10"}), cli::kUsageError);
}

TEST(Component, UnknownLogLevelOrFlagIsAUsageError) {
  Component c("prog", "about", "prog.log");
  EXPECT_EQ(parse(c, {"--log-level", "loud"}), cli::kUsageError);
  Component d("prog", "about", "prog.log");
  EXPECT_EQ(parse(d, {"--frobnicate"}), cli::kUsageError);
  Component e("prog", "about", "prog.log");
  EXPECT_EQ(parse(e, {"--help"}), 0);
}

TEST(Component, ALogFolderThatCannotBeMadeIsARuntimeFailure) {
  const fs::path file = fs::temp_directory_path() / ("simpleci-app-test-" + std::to_string(::getpid()));
  std::ofstream(file) << "a file, not a folder\n";
  Component c("prog", "about", "prog.log");
  EXPECT_EQ(parse(c, {"--log-dir", (file / "logs").string()}), std::nullopt);
  EXPECT_EQ(c.start("prog"), cli::kRuntimeError);
  EXPECT_EQ(c.signal_fd(), -1);
  fs::remove(file);
}

}  // namespace
}  // namespace simpleci::app
