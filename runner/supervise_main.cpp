// simpleci-supervise: the small process each job runs under.
//
//   simpleci-supervise GRACE_MS RUNNER_PID WORKDIR TEST [ARG...]
//
// The runner starts it with posix_spawn (vfork semantics: the runner's address space is never
// copied), in a process group of its own, with SIGCHLD, SIGTERM, SIGHUP and SIGINT blocked, stdin
// from /dev/null and stdout/stderr on the job's output pipe; the environment is the test's. It
// starts the test in a new process group of its own, asks the kernel for SIGHUP when the runner
// dies (PR_SET_PDEATHSIG), and on SIGTERM (timeout, cancel) or SIGHUP (runner died) ends the
// test's group: SIGTERM, then SIGKILL after GRACE_MS (at most 1 s when the runner died). It is a
// child subreaper (PR_SET_CHILD_SUBREAPER): whatever the test left behind, even in another
// session (setsid, double fork, nohup), ends up as its child, and however the job ended it
// SIGKILLs every remaining descendant and reaps them before it exits with the test's status
// (exit code, or 128 + signal). 125: it could not start the test at all; 124: bad arguments.
//
// It is its own small executable so that a job costs one cheap spawn of a small process and one
// fork of it, never a fork of the large multi-threaded runner.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <initializer_list>

namespace {

constexpr int kBadArguments = 124;
constexpr int kCannotStart = 125;

int g_stop_signal = 0;  // which signal asked the supervisor to end the job

void say(const char* text) {
  size_t n = 0;
  while (text[n]) ++n;
  (void)!::write(2, text, n);
}

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
// open and read). Returns how many were signalled.
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
// parent hands its own children to the supervisor for the next round. When the test left
// nothing behind, the first reap answers ECHILD and /proc is never walked. Gives up after 5 s
// (a process stuck in the kernel cannot be killed) so that the job still reports.
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

// Every signal back to its default action, through the system call itself: the C library keeps
// its own two real-time signals (32 and 33) out of reach of sigaction(), and its posix_spawn()
// starts a new process with them ignored, which exec would pass on to the test.
void default_signal_actions() {
  struct KernelSigaction {  // the kernel's layout of struct sigaction on Linux
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)();
    unsigned long mask;
  } dfl{SIG_DFL, 0, nullptr, 0};
  for (long sig = 1; sig <= 64; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::syscall(SYS_rt_sigaction, sig, &dfl, nullptr, sizeof dfl.mask);
  }
}

// The test process, in the supervisor's forked child: its own process group, default signal
// actions and an empty signal mask, not a subreaper, in the checkout; stdio as inherited
// (stdin /dev/null, stdout and stderr on the output pipe).
[[noreturn]] void exec_test(char* const* argv, const char* workdir) {
  ::setpgid(0, 0);
  default_signal_actions();
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
  if (::chdir(workdir) != 0) {
    say("simpleci: cannot enter the checkout\n");
    _exit(126);
  }
  ::execv(argv[0], argv);
  say("simpleci: cannot start the test command\n");
  _exit(127);
}

// The supervisor's own setup: SIGHUP when the runner dies, the orphans of the job, nothing open
// but stdio. The signals it waits for were blocked by the runner at spawn (so a SIGTERM sent
// the moment it started is not lost); *waitset is that set.
void become_supervisor(pid_t runner, sigset_t* waitset) {
  ::prctl(PR_SET_PDEATHSIG, SIGHUP);
  // Orphans of the job (daemons, double forks) become children of the supervisor, not of init,
  // so that kill_everything_left() can find and end them.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  // Keep only stdio: a descriptor the runner leaked without close-on-exec (its dispatcher
  // socket) would keep that connection open after the runner died and hide its death.
  ::close_range(3, ~0U, 0);
  sigemptyset(waitset);
  for (int s : {SIGCHLD, SIGTERM, SIGHUP, SIGINT}) sigaddset(waitset, s);
  ::sigprocmask(SIG_BLOCK, waitset, nullptr);
  if (::getppid() != runner) g_stop_signal = SIGHUP;  // the runner died before we got here
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

// A decimal number in [lo, hi]; false otherwise.
bool parse_number(const char* text, long lo, long hi, long* out) {
  if (!text || !*text) return false;
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(text, &end, 10);
  if (errno != 0 || *end != '\0' || v < lo || v > hi) return false;
  *out = v;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  long grace_ms = 0, runner = 0;
  if (argc < 5 || !parse_number(argv[1], 0, 3600 * 1000, &grace_ms) ||
      !parse_number(argv[2], 1, 0x7fffffff, &runner)) {
    say("usage: simpleci-supervise GRACE_MS RUNNER_PID WORKDIR TEST [ARG...] (started by simpleci-runner)\n");
    return kBadArguments;
  }
  sigset_t waitset;
  become_supervisor(static_cast<pid_t>(runner), &waitset);
  pid_t test = ::fork();
  if (test == 0) exec_test(argv + 4, argv[3]);
  if (test < 0) {
    say("simpleci: cannot fork the test\n");
    return kCannotStart;
  }
  ::setpgid(test, test);
  // Let go of the output pipe: the runner sees its end once the test and all it started are done.
  ::dup2(0, 1);
  ::dup2(0, 2);
  int st = 0;
  bool reaped = false;
  await_test(test, waitset, static_cast<int>(grace_ms), &st, &reaped);
  kill_everything_left(test, &st, &reaped);
  return encode_status(st);
}
