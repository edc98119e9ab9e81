#include "tests/integration/harness.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <zmq.hpp>

#include "messages/codec.h"
#include "net/dealer.h"
#include "net/request.h"

namespace simpleci::itest {

namespace {

// fork + exec with stdout/stderr sent to out_fd; the child leads its own process group.
pid_t spawn(const std::vector<std::string>& argv, int out_fd, const fs::path& cwd) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
    ::dup2(out_fd, 1);
    ::dup2(out_fd, 2);
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) _exit(126);
    ::execvp(args[0], args.data());
    _exit(127);
  }
  return pid;
}

int decode_status(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base ? base : "/tmp") + "/simpleci-it-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  if (std::getenv("SIMPLECI_KEEP_TMP") == nullptr) {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
}

std::string bin(const std::string& name) {
  // SIMPLECI_TEST_BIN_DIR runs the tests against other executables (say, an older build).
  const char* dir = std::getenv("SIMPLECI_TEST_BIN_DIR");
  return std::string(dir && *dir ? dir : SIMPLECI_BIN_DIR) + "/" + name;
}

RunResult run(const std::vector<std::string>& argv, const fs::path& cwd, milliseconds timeout) {
  char tmpl[] = "/tmp/simpleci-run-XXXXXX";
  int fd = ::mkstemp(tmpl);
  if (fd < 0) return {};
  ::unlink(tmpl);
  pid_t pid = spawn(argv, fd, cwd);
  RunResult r;
  int status = 0;
  bool done = wait_until([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, timeout);
  if (!done) {
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    r.exit_code = -1;
  } else {
    r.exit_code = decode_status(status);
  }
  ::lseek(fd, 0, SEEK_SET);
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) r.output.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return r;
}

bool wait_until(const std::function<bool()>& pred, milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return pred();
    std::this_thread::sleep_for(milliseconds(10));
  }
}

Process::Process(std::string name, std::vector<std::string> argv, fs::path log_path,
                 fs::path cwd)
    : name_(std::move(name)), log_path_(std::move(log_path)) {
  int fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot open " + log_path_.string());
  pid_ = spawn(argv, fd, cwd);
  ::close(fd);
}

Process::~Process() {
  if (running()) {
    ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status_, 0);
  }
}

bool Process::running() {
  if (reaped_ || pid_ <= 0) return false;
  if (::waitpid(pid_, &status_, WNOHANG) == pid_) {
    reaped_ = true;
    return false;
  }
  return true;
}

void Process::signal(int sig) {
  if (running()) ::kill(pid_, sig);
}

int Process::stop(int sig, milliseconds timeout) {
  signal(sig);
  if (!wait_until([&] { return !running(); }, timeout)) {
    ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status_, 0);
    reaped_ = true;
    return -2;
  }
  return decode_status(status_);
}

std::string Process::log() const { return read_text(log_path_); }

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  try {
    ss << in.rdbuf();
  } catch (const std::ios_base::failure&) {
    return "";  // a /proc file whose process ended while it was read (ESRCH)
  }
  return ss.str();
}

namespace {
std::vector<std::string> git_argv(const fs::path& dir, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"git", "-C", dir.string(), "-c", "user.name=simpleci test",
                                   "-c", "user.email=test@simpleci.invalid",
                                   "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false"};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}
}  // namespace

std::string GitRepo::git(const std::vector<std::string>& args) {
  RunResult r = run(git_argv(dir_, args));
  if (r.exit_code != 0) throw std::runtime_error("git failed in " + dir_.string() + ": " + r.output);
  return r.output;
}

GitRepo GitRepo::init(const fs::path& dir) {
  fs::create_directories(dir);
  GitRepo repo(dir);
  repo.git({"init", "-q", "-b", "main"});
  return repo;
}

GitRepo GitRepo::clone(const fs::path& src, const fs::path& dir) {
  RunResult r = run(git_argv(src.parent_path(), {"clone", "-q", src.string(), dir.string()}));
  if (r.exit_code != 0) throw std::runtime_error("git clone failed: " + r.output);
  return GitRepo(dir);
}

std::string GitRepo::commit(const std::map<std::string, std::string>& files,
                            const std::string& message) {
  for (const auto& [rel, content] : files) {
    fs::path p = dir_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary | std::ios::trunc) << content;
    bool exec = rel.rfind(".simpleci/", 0) == 0 || (rel.size() > 3 && rel.ends_with(".sh"));
    if (exec) fs::permissions(p, fs::perms::owner_exec | fs::perms::group_exec, fs::perm_options::add);
  }
  git({"add", "-A"});
  git({"commit", "-q", "--allow-empty", "-m", message});
  std::string id = git({"rev-parse", "HEAD"});
  while (!id.empty() && (id.back() == '\n' || id.back() == '\r')) id.pop_back();
  return id;
}

std::optional<msg::Message> ask(const std::string& endpoint, const msg::Message& req,
                                milliseconds timeout, const std::string& server_key,
                                const std::string& secret_key) {
  zmq::context_t ctx(1);
  net::DealerConnection conn(ctx, endpoint, server_key, secret_key);
  return net::request(conn, req, timeout);
}

std::optional<msg::StatusReply> query_status(const std::string& endpoint, milliseconds timeout) {
  auto m = ask(endpoint, msg::StatusRequest{7}, timeout);
  if (!m || !std::holds_alternative<msg::StatusReply>(*m)) return std::nullopt;
  return std::get<msg::StatusReply>(*m);
}

std::optional<msg::ResultsReply> query_results(const std::string& endpoint,
                                               const std::string& commit, milliseconds timeout) {
  msg::ResultsRequest req;
  req.request_id = 8;
  req.commit = commit;
  req.limit = 100;
  auto m = ask(endpoint, req, timeout);
  if (!m || !std::holds_alternative<msg::ResultsReply>(*m)) return std::nullopt;
  return std::get<msg::ResultsReply>(*m);
}

uint64_t counter(const msg::StatusReply& s, const std::string& name) {
  for (const auto& c : s.counters) {
    if (c.name == name) return c.value;
  }
  return 0;
}

std::optional<nlohmann::json> read_result(const fs::path& results_dir, const std::string& commit) {
  std::ifstream in(results_dir / (commit + ".json"));
  if (!in) return std::nullopt;
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

std::string wait_for_endpoint(const fs::path& state_dir, milliseconds timeout) {
  std::string ep;
  wait_until(
      [&] {
        std::ifstream in(state_dir / "endpoint");
        std::getline(in, ep);
        return ep.starts_with("tcp://") || ep.starts_with("ipc://");
      },
      timeout);
  return ep.starts_with("tcp://") || ep.starts_with("ipc://") ? ep : "";
}

std::vector<pid_t> processes_with(const std::string& marker) {
  std::vector<pid_t> found;
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string cmd = read_text(e.path() / "cmdline");
    if (cmd.find(marker) != std::string::npos) found.push_back(std::stoi(name));
  }
  return found;
}

}  // namespace simpleci::itest
