#include "runner/executor.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

extern char** environ;

namespace simpleci::runner {

namespace {

int encode_status(int st) {
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return 255;
}

// A file descriptor that becomes readable when the process ends (Linux 5.3+); -1 where the
// kernel has none, and the runner then polls on a short timer instead.
int open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
  (void)pid;
  return -1;
#endif
}

// The test's environment: the runner's own, with the job's NAME=VALUE entries replacing any
// of the same name.
std::vector<std::string> job_environment(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string_view kv(*e);
    const std::string_view name = kv.substr(0, kv.find('=') + 1);
    bool overridden = false;
    for (const auto& x : extra) {
      if (name == std::string_view(x).substr(0, x.find('=') + 1)) overridden = true;
    }
    if (!overridden) env.emplace_back(kv);
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

// How the supervisor starts: its own process group, the signals it waits for already blocked
// (a SIGTERM sent at once is kept for it, not lost), every other signal at its default (the
// runner ignores SIGPIPE; the test must not inherit that), stdin from /dev/null, stdout and
// stderr on the output pipe.
class SpawnSetup {
 public:
  explicit SpawnSetup(int out_fd) {
    posix_spawnattr_init(&attr_);
    posix_spawn_file_actions_init(&actions_);
    sigset_t blocked, defaults;
    sigemptyset(&blocked);
    for (int s : {SIGCHLD, SIGTERM, SIGHUP, SIGINT}) sigaddset(&blocked, s);
    sigemptyset(&defaults);
    for (int s : {SIGTERM, SIGHUP, SIGINT, SIGPIPE, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2}) sigaddset(&defaults, s);
    posix_spawnattr_setflags(&attr_, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&attr_, 0);
    posix_spawnattr_setsigmask(&attr_, &blocked);
    posix_spawnattr_setsigdefault(&attr_, &defaults);
    posix_spawn_file_actions_addopen(&actions_, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions_, out_fd, 1);
    posix_spawn_file_actions_adddup2(&actions_, out_fd, 2);
  }
  ~SpawnSetup() {
    posix_spawnattr_destroy(&attr_);
    posix_spawn_file_actions_destroy(&actions_);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;
  const posix_spawnattr_t* attr() const { return &attr_; }
  const posix_spawn_file_actions_t* actions() const { return &actions_; }

 private:
  posix_spawnattr_t attr_;
  posix_spawn_file_actions_t actions_;
};

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

ProcessExecutor::~ProcessExecutor() {
  for (auto& [id, p] : jobs_) {
    ::kill(p.supervisor, SIGHUP);
    close_fd(p.out_fd);
    close_fd(p.pid_fd);
  }
}

void ProcessExecutor::close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

bool ProcessExecutor::start(const RunSpec& spec, std::string* err) {
  std::vector<std::string> args = {supervisor_, std::to_string(grace_ms_), std::to_string(::getpid()),
                                   spec.workdir};
  args.insert(args.end(), spec.argv.begin(), spec.argv.end());
  std::vector<std::string> env = job_environment(spec.env);
  std::vector<char*> argv = pointers(args), envp = pointers(env);

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    *err = std::string("cannot create a pipe: ") + std::strerror(errno);
    return false;
  }
  pid_t pid = -1;
  int rc;
  {
    SpawnSetup setup(fds[1]);
    rc = ::posix_spawn(&pid, supervisor_.c_str(), setup.actions(), setup.attr(), argv.data(), envp.data());
  }
  ::close(fds[1]);
  if (rc != 0) {
    *err = "cannot start " + supervisor_ + ": " + std::strerror(rc);
    ::close(fds[0]);
    return false;
  }
  ::fcntl(fds[0], F_SETFL, ::fcntl(fds[0], F_GETFL) | O_NONBLOCK);
  Proc p;
  p.supervisor = pid;
  p.out_fd = fds[0];
  p.pid_fd = open_pidfd(pid);
  p.deadline = clock_.now() + std::chrono::seconds(spec.timeout_s);
  p.capture = std::make_unique<OutputCapture>(spec.output_cap);
  jobs_[spec.job_id] = std::move(p);
  return true;
}

void ProcessExecutor::cancel(uint64_t job_id) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end() || it->second.cancelled) return;
  it->second.cancelled = true;
  ::kill(it->second.supervisor, SIGTERM);
}

void ProcessExecutor::drain(Proc& p) {
  char buf[65536];
  while (p.out_fd >= 0) {
    ssize_t n = ::read(p.out_fd, buf, sizeof buf);
    if (n > 0) {
      p.capture->append(std::string_view(buf, static_cast<size_t>(n)));
      continue;
    }
    if (n == 0) close_fd(p.out_fd);
    break;  // EAGAIN or error
  }
}

std::vector<Finished> ProcessExecutor::poll() {
  std::vector<Finished> done;
  SteadyTime now = clock_.now();
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    Proc& p = it->second;
    drain(p);
    if (!p.timed_out && !p.cancelled && now >= p.deadline) {
      p.timed_out = true;
      ::kill(p.supervisor, SIGTERM);
    }
    int status = 0;
    if (::waitpid(p.supervisor, &status, WNOHANG) != p.supervisor) {
      ++it;
      continue;
    }
    drain(p);  // what the test wrote before it ended
    close_fd(p.out_fd);  // a process that left the group may hold the pipe
    close_fd(p.pid_fd);
    if (!p.cancelled) {
      Finished f;
      f.job_id = it->first;
      int code = encode_status(status);
      if (p.timed_out) {
        f.status = msg::JobStatus::kTimeout;
        f.exit_code = -1;
        p.capture->append("\n[simpleci: job timed out; its process group was killed]\n");
      } else {
        f.status = code == 0 ? msg::JobStatus::kPassed : msg::JobStatus::kFailed;
        f.exit_code = code;
      }
      f.output = p.capture->result();
      f.truncated = p.capture->truncated();
      LiveBacklog& live = p.capture->live();
      f.unsent_offset = live.offset();
      f.unsent = std::string(live.front(live.size()));
      done.push_back(std::move(f));
    }
    it = jobs_.erase(it);
  }
  return done;
}

std::vector<int> ProcessExecutor::fds() const {
  std::vector<int> out;
  for (const auto& [id, p] : jobs_) {
    if (p.out_fd >= 0) out.push_back(p.out_fd);
    if (p.pid_fd >= 0) out.push_back(p.pid_fd);
  }
  return out;
}

Millis ProcessExecutor::max_sleep() const {
  constexpr Millis kPollWithoutPidfd(20), kIdle(1000);
  Millis sleep = kIdle;
  const SteadyTime now = clock_.now();
  for (const auto& [id, p] : jobs_) {
    if (p.pid_fd < 0) return kPollWithoutPidfd;
    if (p.timed_out || p.cancelled) continue;
    sleep = std::min(sleep, std::max(Millis(0), std::chrono::ceil<Millis>(p.deadline - now)));
  }
  return sleep;
}

LiveBacklog* ProcessExecutor::live(uint64_t job_id) const {
  auto it = jobs_.find(job_id);
  return it == jobs_.end() ? nullptr : &it->second.capture->live();
}

std::string supervisor_beside(const std::string& self, std::string* err) {
  std::error_code ec;
  std::filesystem::path exe = std::filesystem::read_symlink(self, ec);
  if (ec) exe = self;
  const std::string path = (exe.parent_path() / "simpleci-supervise").string();
  if (::access(path.c_str(), X_OK) != 0) {
    *err = "cannot find the job supervisor " + path + " (" + std::strerror(errno) +
           "): simpleci-supervise must be installed beside simpleci-runner";
    return "";
  }
  return path;
}

}  // namespace simpleci::runner
