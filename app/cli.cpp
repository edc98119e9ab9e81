#include "app/cli.h"

#include <cstdio>
#include <exception>

#include "messages/limits.h"
#include "messages/validate.h"
#include "net/curve.h"
#include "net/endpoint.h"

namespace simpleci::cli {

int fail(const std::string& program, const std::string& problem, int code) {
  std::fprintf(stderr, "%s: %s\n", program.c_str(), problem.c_str());
  return code;
}

Stop parse(CLI::App& app, int argc, char** argv, const std::string& program) {
  try {
    app.parse(argc, argv);
    return std::nullopt;
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string what = e.what();
    for (char& c : what) {
      if (c == '\n') c = ' ';
    }
    return fail(program, what, kUsageError);
  }
}

bool parse(CLI::App& app, int argc, char** argv, const std::string& program, int* exit_code) {
  const Stop stop = parse(app, argc, argv, program);
  if (stop) *exit_code = *stop;
  return !stop;
}

int guarded_main(const char* program, int (*body)(int, char**), int argc, char** argv) {
  try {
    return body(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
  } catch (...) {
    std::fprintf(stderr, "%s: unexpected error\n", program);
  }
  return kRuntimeError;
}

bool in_range(const std::string& program, const std::string& flag, int64_t v, int64_t lo,
              int64_t hi) {
  if (v >= lo && v <= hi) return true;
  fail(program, flag + " must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                    ", got " + std::to_string(v),
       kUsageError);
  return false;
}

bool RangedFlags::check(const std::string& program) const {
  for (const auto& in_its_range : checks_) {
    if (!in_its_range(program)) return false;
  }
  return true;
}

std::string with_range(const std::string& help, int64_t lo, int64_t hi) {
  return help + " (" + std::to_string(lo) + ".." + std::to_string(hi) + ")";
}

Stop check_test_command(const std::string& program, const std::string& command) {
  if (!command.empty() && is_valid_text(command, msg::kMaxCommandLen)) return std::nullopt;
  return fail(program,
              "--test-command must be 1.." + std::to_string(msg::kMaxCommandLen) +
                  " bytes without NUL",
              kUsageError);
}

void ConnectFlags::add(CLI::App& app, const std::string& who) {
  app.add_option("--dispatcher", dispatcher, "dispatcher endpoint tcp://HOST:PORT or ipc://PATH");
  app.add_option("--dispatcher-server", dispatcher_server, "dispatcher as HOST:PORT (original spelling)");
  app.add_option("--curve-server-key", server_key_file, "dispatcher's public key file (CURVE)");
  app.add_option("--curve-secret-key", secret_key_file, who + "'s secret key file (CURVE)");
}

Stop ConnectFlags::resolve(const std::string& program, Dispatcher* out) const {
  std::string err;
  out->endpoint = resolve_dispatcher(dispatcher, dispatcher_server, &err);
  if (out->endpoint.empty()) return fail(program, err, kUsageError);
  if (server_key_file.empty() != secret_key_file.empty()) {
    return fail(program, "--curve-server-key and --curve-secret-key go together", kUsageError);
  }
  if (!server_key_file.empty() && (!curve::load_key(server_key_file, &out->server_key, &err) ||
                                   !curve::load_secret_key(secret_key_file, &out->secret_key, &err))) {
    return fail(program, err, kRuntimeError);
  }
  return std::nullopt;
}

}  // namespace simpleci::cli
