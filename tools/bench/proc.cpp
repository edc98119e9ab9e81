#include "tools/bench/proc.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace simpleci::bench {

fs::path self_dir() { return fs::read_symlink("/proc/self/exe").parent_path(); }

pid_t start(const std::vector<std::string>& argv, const fs::path& log) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  pid_t pid = ::fork();
  if (pid == 0) {
    int devnull = ::open("/dev/null", O_RDWR);
    ::dup2(devnull, 0);
    ::dup2(fd >= 0 ? fd : devnull, 1);
    ::dup2(fd >= 0 ? fd : devnull, 2);
    ::execvp(args[0], args.data());
    _exit(127);
  }
  if (fd >= 0) ::close(fd);
  return pid;
}

int run(const std::vector<std::string>& argv, std::string* output) {
  int fds[2];
  if (::pipe(fds) != 0) return -1;
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::dup2(fds[1], 2);
    ::close(fds[0]);
    ::execvp(args[0], args.data());
    _exit(127);
  }
  ::close(fds[1]);
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) {
    if (output) output->append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  int st = 0;
  ::waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void stop(pid_t pid, std::chrono::milliseconds timeout) {
  if (pid <= 0) return;
  ::kill(pid, SIGTERM);
  int st;
  if (!wait_for([&] { return ::waitpid(pid, &st, WNOHANG) == pid; }, timeout, std::chrono::milliseconds(10))) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &st, 0);
  }
}

bool wait_for(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
              std::chrono::milliseconds step) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(step);
  }
  return true;
}

std::string read_endpoint(const fs::path& state_dir) {
  std::string ep;
  wait_for(
      [&] {
        std::ifstream in(state_dir / "endpoint");
        std::getline(in, ep);
        return ep.rfind("tcp://", 0) == 0;
      },
      std::chrono::milliseconds(10000), std::chrono::milliseconds(10));
  return ep.rfind("tcp://", 0) == 0 ? ep : "";
}

std::string start_dispatcher(const fs::path& dir, const std::string& bin, pid_t* pid,
                             const std::vector<std::string>& extra) {
  const fs::path exe = bin.empty() ? self_dir() / "simpleci-dispatcher" : fs::path(bin);
  std::vector<std::string> argv = {exe.string(), "--bind", "tcp://127.0.0.1:0", "--state-dir", (dir / "state").string(),
                                   "--results-dir", (dir / "results").string(), "--log-dir", (dir / "logs").string(),
                                   "--log-level", "warn"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  *pid = start(argv, dir / "dispatcher.out");
  std::string ep = read_endpoint(dir / "state");
  if (ep.empty()) {
    std::fprintf(stderr, "simpleci-bench: the dispatcher did not start (%s)\n", exe.c_str());
    stop(*pid);
  }
  return ep;
}

void memory_kb(pid_t pid, long* rss, long* hwm) {
  const Memory m = memory(pid);
  *rss = m.rss_kb;
  *hwm = m.hwm_kb;
}

Memory memory(pid_t pid) {
  Memory m;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  const std::pair<const char*, long*> fields[] = {
      {"VmRSS:", &m.rss_kb}, {"VmHWM:", &m.hwm_kb}, {"RssAnon:", &m.anon_kb}, {"RssFile:", &m.file_kb}};
  while (std::getline(in, line)) {
    for (const auto& [name, value] : fields) {
      const size_t n = std::strlen(name);
      if (line.compare(0, n, name) == 0) *value = std::stol(line.substr(n));
    }
  }
  return m;
}

namespace {

// Fields 14 to 17 of /proc/PID/stat: utime, stime, cutime, cstime (clock ticks).
std::array<long, 4> stat_times(pid_t pid) {
  std::array<long, 4> t{};
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t close = all.rfind(')');
  if (close == std::string::npos) return t;
  std::istringstream rest(all.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 17 && rest >> field; ++i) {  // field 3 is the state
    if (i >= 14) t[static_cast<size_t>(i - 14)] = std::stol(field);
  }
  return t;
}

}  // namespace

long cpu_ticks(pid_t pid) {
  const auto t = stat_times(pid);
  return t[0] + t[1];
}

long cpu_ticks_with_children(pid_t pid) {
  const auto t = stat_times(pid);
  return t[0] + t[1] + t[2] + t[3];
}

double ticks_ms(long ticks) { return 1000.0 * static_cast<double>(ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK)); }

double cpu_ns(pid_t pid) {
  double ns = 0;
  std::error_code ec;
  for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream in(task.path() / "schedstat");
    double on_cpu = 0;
    if (in >> on_cpu) ns += on_cpu;
  }
  return ns;
}

double children_cpu_ms() {
  struct rusage ru {};
  ::getrusage(RUSAGE_CHILDREN, &ru);
  auto ms = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) * 1000.0 + static_cast<double>(tv.tv_usec) / 1000.0; };
  return ms(ru.ru_utime) + ms(ru.ru_stime);
}

fs::path make_temp_dir(const std::string& base) {
  fs::path root = base.empty() ? fs::temp_directory_path() : fs::path(base);
  std::error_code ec;
  fs::create_directories(root, ec);
  std::string tmpl = (fs::absolute(root) / "simpleci-bench-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) return {};
  return tmpl;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

std::vector<std::string> git_argv(const fs::path& dir, std::vector<std::string> args) {
  std::vector<std::string> argv = {"git", "-C", dir.string(), "-c", "user.name=bench", "-c",
                                   "user.email=bench@simpleci.invalid", "-c", "commit.gpgsign=false"};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

std::string git_head(const fs::path& dir) {
  std::string out;
  if (run(git_argv(dir, {"rev-parse", "HEAD"}), &out) != 0 || out.size() < 40) return "";
  return out.substr(0, 40);
}

}  // namespace simpleci::bench
