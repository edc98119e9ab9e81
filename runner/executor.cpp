#include "runner/executor.h"

#include <dirent.h>
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

// Reaps every child that has ended (the test, or an orphan handed to the supervisor), keeping
// the test's status. Returns waitpid's last answer: 0 while children run, -1 (ECHILD) if none.
pid_t reap_ended(pid_t test, int* st, bool* reaped) {
  int s = 0;
  pid_t w;
  while ((w = ::waitpid(-1, &s, WNOHANG)) > 0) {
    if (w == test && !*reaped) {
      *st = s;
      *reaped = true;
    }
  }
  return w;
}

// Ends the test's process group: SIGTERM, up to grace_ms for it to go, then SIGKILL. Orphans
// in the group are reaped as they end (a zombie would still count as a member).
void end_group(pid_t test, int grace_ms, bool* reaped, int* st) {
  ::kill(-test, SIGTERM);
  for (int waited = 0; waited < grace_ms; waited += 10) {
    reap_ended(test, st, reaped);
    if (*reaped && ::kill(-test, 0) != 0) return;  // the whole group is gone
    nap_ms(10);
  }
  ::kill(-test, SIGKILL);
  if (!*reaped && ::waitpid(test, st, 0) == test) *reaped = true;
}

// The parent pid in the text of /proc/<pid>/stat ("pid (comm) state ppid ..."); the command
// name may hold spaces and parentheses, so parsing starts after the last ')'. -1 if unreadable.
pid_t parent_in_stat(const char* text, ssize_t len) {
  ssize_t i = len - 1;
  while (i >= 0 && text[i] != ')') --i;
  i += 4;  // ") S "
  if (i <= 3 || i >= len) return -1;
  pid_t ppid = 0;
  for (; i < len && text[i] >= '0' && text[i] <= '9'; ++i) ppid = ppid * 10 + (text[i] - '0');
  return ppid;
}

// SIGKILLs every process whose parent is `parent`, found by walking /proc (raw getdents64,
// open and read: nothing that allocates). Returns how many were signalled.
int kill_children_of(pid_t parent) {
  int dir = ::open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return 0;
  int killed = 0;
  alignas(8) char entries[8192];
  ssize_t n;
  while ((n = ::getdents64(dir, entries, sizeof entries)) > 0) {
    for (ssize_t off = 0; off < n;) {
      const auto* d = reinterpret_cast<const struct dirent64*>(entries + off);
      off += d->d_reclen;
      const char* name = d->d_name;
      if (name[0] < '1' || name[0] > '9') continue;
      char path[64] = "/proc/";
      size_t k = 6;
      for (const char* c = name; *c && k < sizeof path - 6; ++c) path[k++] = *c;
      for (const char* c = "/stat"; *c; ++c) path[k++] = *c;
      path[k] = '\0';
      int fd = ::open(path, O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;  // gone meanwhile
      char stat[1024];
      ssize_t len = ::read(fd, stat, sizeof stat);
      ::close(fd);
      if (len <= 0 || parent_in_stat(stat, len) != parent) continue;
      pid_t pid = 0;
      for (const char* c = name; *c >= '0' && *c <= '9'; ++c) pid = pid * 10 + (*c - '0');
      if (::kill(pid, SIGKILL) == 0) ++killed;
    }
  }
  ::close(dir);
  return killed;
}

// After the job ended for whatever reason: kills everything started under the supervisor. As
// a child subreaper it inherits every orphan of the job (daemons that called setsid, double
// forks, nohup), so killing its children until none is left reaches all of them; a killed
// parent hands its own children to the supervisor for the next round. Gives up after 5 s (a
// process stuck in the kernel cannot be killed) so that the job still reports.
void kill_everything_left(pid_t test, int* st, bool* reaped) {
  ::kill(-test, SIGKILL);
  const pid_t self = ::getpid();
  timespec start{}, now{};
  ::clock_gettime(CLOCK_MONOTONIC, &start);
  do {
    if (reap_ended(test, st, reaped) < 0 && errno == ECHILD) return;
    if (kill_children_of(self) == 0) nap_ms(2);  // a child is exiting or being handed to us
    ::clock_gettime(CLOCK_MONOTONIC, &now);
  } while (now.tv_sec - start.tv_sec < 5);
}

// The test process, in the supervisor's forked child: its own process group, default signal
// handling, stdin from /dev/null, stdout and stderr to the output pipe.
[[noreturn]] void exec_test(char* const* argv, char* const* envp, const char* workdir, int out_fd) {
  ::setpgid(0, 0);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  for (int s : {SIGTERM, SIGHUP, SIGINT, SIGPIPE}) ::sigaction(s, &dfl, nullptr);
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
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

// The supervisor's own setup: a process group of its own, SIGHUP when the runner dies, the
// orphans of the job, only stdio and the output pipe (moved to fd 3, which it returns) open,
// and the signals it waits for (in *waitset) blocked.
int become_supervisor(int out_fd, pid_t runner, sigset_t* waitset) {
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGHUP);
  // Orphans of the job (daemons, double forks) become children of the supervisor, not of init,
  // so that kill_everything_left() can find and end them.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  // Keep only stdio and the output pipe: an inherited copy of the runner's dispatcher socket
  // would keep that connection open after the runner died and hide its death.
  if (out_fd != 3) {
    ::dup2(out_fd, 3);
    out_fd = 3;
  }
  ::close_range(4, ~0U, 0);
  // The supervisor waits for signals synchronously: the test's exit (SIGCHLD), a request to end
  // the job (SIGTERM) or the runner's death (SIGHUP).
  sigemptyset(waitset);
  for (int s : {SIGCHLD, SIGTERM, SIGHUP, SIGINT}) sigaddset(waitset, s);
  ::sigprocmask(SIG_SETMASK, waitset, nullptr);
  if (::getppid() != runner) g_stop_signal = SIGHUP;  // the runner died before we got here
  return out_fd;
}

// Waits until the test ends, or a signal asks to end it (then ends its group, with a shorter
// grace period when the runner died).
void await_test(pid_t test, const sigset_t& waitset, int grace_ms, int* st, bool* reaped) {
  while (true) {
    reap_ended(test, st, reaped);
    if (*reaped) return;
    if (g_stop_signal) {
      int grace = g_stop_signal == SIGHUP ? (grace_ms < 1000 ? grace_ms : 1000) : grace_ms;
      end_group(test, grace, reaped, st);
      return;
    }
    timespec tick{0, 200 * 1000000L};
    int sig = ::sigtimedwait(&waitset, nullptr, &tick);
    if (sig == SIGTERM || sig == SIGHUP || sig == SIGINT) g_stop_signal = sig;
  }
}

// The supervisor, in the forked child. Only async-signal-safe calls from here on: the runner
// has other threads (git work), so the child may not allocate.
[[noreturn]] void supervise(char* const* argv, char* const* envp, const char* workdir, int out_fd,
                            int grace_ms, pid_t runner) {
  sigset_t waitset;
  out_fd = become_supervisor(out_fd, runner, &waitset);
  pid_t test = ::fork();
  if (test == 0) exec_test(argv, envp, workdir, out_fd);
  ::close(out_fd);
  if (test < 0) _exit(125);
  ::setpgid(test, test);
  int st = 0;
  bool reaped = false;
  await_test(test, waitset, grace_ms, &st, &reaped);
  kill_everything_left(test, &st, &reaped);
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
