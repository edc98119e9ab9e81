#include "runner/executor.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace simpleci::runner {

namespace {

int g_stop_signal = 0;  // supervisor only: which signal asked it to end the job

void nap_ms(int ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, nullptr);
}

int encode_status(int st) {
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return 255;
}

// Ends the test's process group: SIGTERM, up to grace_ms for it to go, then SIGKILL.
int end_group(pid_t test, int grace_ms, bool* reaped, int* st) {
  ::kill(-test, SIGTERM);
  for (int waited = 0; waited < grace_ms; waited += 10) {
    if (!*reaped && ::waitpid(test, st, WNOHANG) == test) *reaped = true;
    if (*reaped && ::kill(-test, 0) != 0) return 0;  // the whole group is gone
    nap_ms(10);
  }
  ::kill(-test, SIGKILL);
  if (!*reaped) ::waitpid(test, st, 0);
  return 0;
}

// The supervisor, in the forked child. Only async-signal-safe calls from here on: the runner
// has other threads (git work), so the child may not allocate.
[[noreturn]] void supervise(char* const* argv, char* const* envp, const char* workdir, int out_fd,
                            int grace_ms, pid_t runner) {
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGHUP);
  // Keep only stdio and the output pipe: an inherited copy of the runner's dispatcher socket
  // would keep that connection open after the runner died and hide its death.
  if (out_fd != 3) {
    ::dup2(out_fd, 3);
    out_fd = 3;
  }
  ::close_range(4, ~0U, 0);
  // The supervisor waits for signals synchronously: the test's exit (SIGCHLD), a request to end
  // the job (SIGTERM) or the runner's death (SIGHUP).
  sigset_t waitset;
  sigemptyset(&waitset);
  for (int s : {SIGCHLD, SIGTERM, SIGHUP, SIGINT}) sigaddset(&waitset, s);
  ::sigprocmask(SIG_SETMASK, &waitset, nullptr);
  if (::getppid() != runner) g_stop_signal = SIGHUP;  // the runner died before we got here

  pid_t test = ::fork();
  if (test == 0) {
    ::setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    for (int s : {SIGTERM, SIGHUP, SIGINT, SIGPIPE}) ::sigaction(s, &dfl, nullptr);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::dup2(out_fd, 1);
    ::dup2(out_fd, 2);
    if (::chdir(workdir) != 0) {
      const char m[] = "simpleci: cannot enter the checkout\n";
      (void)!::write(2, m, sizeof m - 1);
      _exit(126);
    }
    ::execve(argv[0], argv, envp);
    const char m[] = "simpleci: cannot start the test command\n";
    (void)!::write(2, m, sizeof m - 1);
    _exit(127);
  }
  ::close(out_fd);
  if (test < 0) _exit(125);
  ::setpgid(test, test);
  int st = 0;
  bool reaped = false;
  while (true) {
    if (::waitpid(test, &st, WNOHANG) == test) {
      reaped = true;
      break;
    }
    if (!g_stop_signal) {
      timespec tick{0, 200 * 1000000L};
      int sig = ::sigtimedwait(&waitset, nullptr, &tick);
      if (sig == SIGTERM || sig == SIGHUP || sig == SIGINT) g_stop_signal = sig;
      continue;
    }
    {
      int grace = g_stop_signal == SIGHUP ? (grace_ms < 1000 ? grace_ms : 1000) : grace_ms;
      end_group(test, grace, &reaped, &st);
      _exit(encode_status(st));
    }
  }
  ::kill(-test, SIGKILL);  // whatever the test left running in its group
  _exit(encode_status(st));
}

}  // namespace

ProcessExecutor::~ProcessExecutor() {
  for (auto& [id, p] : jobs_) {
    ::kill(p.supervisor, SIGHUP);
    if (p.out_fd >= 0) ::close(p.out_fd);
  }
}

bool ProcessExecutor::start(const RunSpec& spec, std::string* err) {
  // Everything the child needs is built before fork.
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string_view kv(*e);
    bool overridden = false;
    for (const auto& x : spec.env) {
      if (kv.substr(0, kv.find('=') + 1) == std::string_view(x).substr(0, x.find('=') + 1)) overridden = true;
    }
    if (!overridden) env.emplace_back(kv);
  }
  env.insert(env.end(), spec.env.begin(), spec.env.end());
  std::vector<char*> argv, envp;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    *err = std::string("cannot create a pipe: ") + std::strerror(errno);
    return false;
  }
  pid_t me = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    *err = std::string("cannot fork: ") + std::strerror(errno);
    ::close(fds[0]);
    ::close(fds[1]);
    return false;
  }
  if (pid == 0) {
    ::close(fds[0]);
    supervise(argv.data(), envp.data(), spec.workdir.c_str(), fds[1], grace_ms_, me);
  }
  ::close(fds[1]);
  ::fcntl(fds[0], F_SETFL, ::fcntl(fds[0], F_GETFL) | O_NONBLOCK);
  Proc p;
  p.supervisor = pid;
  p.out_fd = fds[0];
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
    if (n == 0) {
      p.eof = true;
      ::close(p.out_fd);
      p.out_fd = -1;
    }
    break;  // EAGAIN or error
  }
}

std::vector<Finished> ProcessExecutor::poll() {
  std::vector<Finished> done;
  SteadyTime now = clock_.now();
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    Proc& p = it->second;
    drain(p);
    if (!p.exited && !p.timed_out && !p.cancelled && now >= p.deadline) {
      p.timed_out = true;
      ::kill(p.supervisor, SIGTERM);
    }
    if (!p.exited && ::waitpid(p.supervisor, &p.status, WNOHANG) == p.supervisor) {
      p.exited = true;
      drain(p);
    }
    if (!p.exited) {
      ++it;
      continue;
    }
    if (p.out_fd >= 0) ::close(p.out_fd);  // a process that left the group may hold the pipe
    if (!p.cancelled) {
      Finished f;
      f.job_id = it->first;
      int code = encode_status(p.status);
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
  }
  return out;
}

const std::string* ProcessExecutor::head(uint64_t job_id) const {
  auto it = jobs_.find(job_id);
  return it == jobs_.end() ? nullptr : &it->second.capture->head();
}

}  // namespace simpleci::runner
