"""What the Python tests of simpleci-web share: a real pipeline (a git repository, the dispatcher,
a runner and simpleci-web on loopback ports) in a temporary folder, started and stopped by PID,
and waiting on conditions with deadlines.

Every process is started in its own process group, dies with the test (PR_SET_PDEATHSIG) and
is stopped by its PID in stop(), which the tests reach through `with Stack(...)` even when they
fail. The whole test is bounded by an alarm (bound()).
"""

import argparse
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

def missing(why):
    """A tool the test needs is not installed: a failure, not a skip (tools/test installs it)."""
    print(f"FAILED: {why}", file=sys.stderr)
    sys.exit(1)


def args(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--bin", required=True, help="folder of the simpleCI executables (build/bin)")
    p.add_argument("--artifacts", default="", help="folder for screenshots and logs kept after the test")
    p.add_argument("--timeout", type=int, default=240, help="seconds the whole test may take")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    return p.parse_args()


class Timeout(Exception):
    pass


def bound(seconds):
    """Raises Timeout in the main thread after seconds, so cleanup still runs."""
    def fire(*_):
        raise Timeout(f"the test took more than {seconds} s")
    signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    # ctest's own timeout and Ctrl-C: leave through the same cleanup.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(Timeout("terminated")))


# Checks run at every poll of wait_until: a component that exits fails the wait at once.
_guards = []


def wait_until(pred, timeout, what):
    """Polls pred every 50 ms until it returns a true value (which is returned); fails with what
    after timeout seconds, or as soon as a started component has exited."""
    deadline = time.monotonic() + timeout
    while True:
        for guard in _guards:
            guard()
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tool(name):
    """A program from PATH or the sbin folders (nginx lives in /usr/sbin); None when missing."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")


_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent():
    os.setpgid(0, 0)
    _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def get(url, timeout=5):
    """(status, body bytes) of a GET; status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (OSError, urllib.error.URLError):
        return 0, b""


def get_json(url, timeout=5):
    status, body = get(url, timeout)
    if status != 200:
        raise AssertionError(f"GET {url}: {status} {body[:200]!r}")
    return json.loads(body)


# The test script of the repository: prints a line, and when gates are asked for, waits for each
# gate file (at most 60 s) before printing the next line, so a test can see it running.
def gated_script(gates):
    lines = ["#!/bin/sh", 'echo "simpleci test of $SIMPLECI_COMMIT on $SIMPLECI_BRANCH"',
             "printf '\\033[32mgreen\\033[0m and \\033[1;31mbold red\\033[0m\\n'", "echo line one"]
    for n, gate in enumerate(gates):
        lines += [f"i=0; while [ ! -e '{gate}' ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done",
                  f"echo line {['two', 'three', 'four'][n]}"]
    lines.append("exit 0")
    return "\n".join(lines) + "\n"


class Stack:
    """The pipeline under test. Components start on demand; stop() ends all, newest first."""

    def __init__(self, bindir, keep=False):
        self.bin = bindir
        for exe in ("simpleci-dispatcher", "simpleci-runner", "simpleci-web", "simpleci"):
            if not os.access(os.path.join(bindir, exe), os.X_OK):
                raise AssertionError(f"{exe} is not built in {bindir}")
        self.keep = keep
        self.root = tempfile.mkdtemp(prefix="simpleci-webtest-")
        self.procs = []  # (name, Popen)
        self.endpoint = ""
        self.web = ""
        self.upstream = os.path.join(self.root, "upstream")
        self.logs = os.path.join(self.root, "logs")
        os.makedirs(self.logs)
        self.git("init", "-q", "-b", "main", self.upstream, cwd=self.root)
        self.commit({".simpleci/test": gated_script([])}, "first")
        _guards.append(self.check_running)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    # ----- processes -----

    def start(self, name, argv, **kw):
        out = open(os.path.join(self.root, f"{name}.out"), "wb")
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             preexec_fn=_die_with_parent, **kw)
        out.close()
        self.procs.append((name, p))
        return p

    def stop(self):
        """Each component is the leader of its own process group: SIGTERM to the group (its
        children, such as nginx's workers or chromium, go with it), SIGKILL after 10 s, and
        SIGKILL to what is left of the group once the leader is gone."""
        for _, p in reversed(self.procs):
            self._end(p)
        self.procs = []
        if self.check_running in _guards:
            _guards.remove(self.check_running)
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    @staticmethod
    def _end(p):
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            if p.poll() is not None:
                break
            try:
                os.killpg(p.pid, sig)
                p.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
            except ProcessLookupError:
                break
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def stop_one(self, name):
        for n, p in self.procs:
            if n == name:
                self._end(p)
        self.procs = [(n, p) for n, p in self.procs if n != name]

    def check_running(self):
        for name, p in self.procs:
            if p.poll() is not None:
                raise AssertionError(f"{name} exited with {p.returncode}:\n{self.output_of(name)[-3000:]}")

    def alive(self, name):
        return any(n == name and p.poll() is None for n, p in self.procs)

    def output_of(self, name):
        try:
            with open(os.path.join(self.root, f"{name}.out"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def dump_logs(self, limit=4000):
        text = ""
        for f in sorted(os.listdir(self.root)):
            if f.endswith(".out"):
                body = self.output_of(f[:-4])
                text += f"----- {f} -----\n{body[-limit:]}\n"
        return text

    def save_logs(self, folder):
        if not folder:
            return
        os.makedirs(folder, exist_ok=True)
        for f in os.listdir(self.root):
            if f.endswith(".out"):
                shutil.copy(os.path.join(self.root, f), os.path.join(folder, f))

    # ----- git -----

    def git(self, *argv, cwd=None):
        ident = ["-c", "user.name=simpleci test", "-c", "user.email=test@simpleci.invalid",
                 "-c", "commit.gpgsign=false"]
        r = subprocess.run(["git", *ident, *argv], cwd=cwd or self.upstream, capture_output=True,
                           text=True, timeout=30)
        if r.returncode != 0:
            raise AssertionError(f"git {' '.join(argv)}: {r.stderr}")
        return r.stdout.strip()

    def commit(self, files, message):
        for path, text in files.items():
            full = os.path.join(self.upstream, path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w") as f:
                f.write(text)
            if path.startswith(".simpleci/") or path.endswith(".sh"):
                os.chmod(full, 0o755)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")

    # ----- components -----

    def exe(self, name):
        return os.path.join(self.bin, name)

    def start_dispatcher(self):
        state = os.path.join(self.root, "state")
        self.results = os.path.join(self.root, "test_results")
        self.start("dispatcher", [self.exe("simpleci-dispatcher"), "--bind", "tcp://127.0.0.1:0",
                                  "--state-dir", state, "--results-dir", self.results,
                                  "--log-dir", self.logs, "--heartbeat-ms", "500"])
        path = os.path.join(state, "endpoint")

        def endpoint():
            if not self.alive("dispatcher"):
                raise AssertionError("the dispatcher exited:\n" + self.output_of("dispatcher"))
            try:
                with open(path) as f:
                    return f.read().strip()
            except OSError:
                return ""
        self.endpoint = wait_until(endpoint, 20, "the dispatcher's endpoint file")

    def start_runner(self, name="r1"):
        clone = os.path.join(self.root, "clones", name)
        if not os.path.exists(clone):
            self.git("clone", "-q", self.upstream, clone, cwd=self.root)
        self.start(f"runner-{name}", [self.exe("simpleci-runner"), "--dispatcher", self.endpoint,
                                      "--name", name, "--log-dir", self.logs, clone])

    def start_web(self, listen="127.0.0.1:0"):
        # Port 0: the OS picks; simpleci-web writes where it listens to the address file.
        address = os.path.join(self.root, "web.address")
        if os.path.exists(address):
            os.remove(address)
        self.start("web", [self.exe("simpleci-web"), "--dispatcher", self.endpoint,
                           "--listen", listen, "--address-file", address,
                           "--log-dir", self.logs])

        def listening():
            try:
                with open(address) as f:
                    text = f.read().strip()
                return text if text.endswith(tuple("0123456789")) else ""
            except OSError:
                return ""
        self.web = "http://" + wait_until(listening, 30, "simpleci-web's address file")

        def up():
            if not self.alive("web"):
                raise AssertionError("simpleci-web exited:\n" + self.output_of("web"))
            return get(self.web + "/api/status", timeout=2)[0] == 200
        wait_until(up, 30, f"simpleci-web answering on {self.web}")
        return self.web

    def restart_web(self):
        """A new simpleci-web on the same address (a new model, feed and event ring)."""
        self.stop_one("web")
        return self.start_web(self.web[len("http://"):])

    def submit(self, commit, branch="main"):
        r = subprocess.run([self.exe("simpleci"), "submit", commit, "--branch", branch,
                            "--dispatcher", self.endpoint], capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise AssertionError(f"simpleci submit: {r.returncode} {r.stdout}{r.stderr}")

    def job_of(self, commit, timeout=30):
        """The job (JSON of /api/jobs) of commit, once the web knows it."""
        def find():
            for j in get_json(self.web + "/api/jobs?limit=50")["jobs"]:
                if j["commit"] == commit:
                    return j
            return None
        return wait_until(find, timeout, f"a job for {commit} in /api/jobs")

    def job(self, job_id):
        return get_json(f"{self.web}/api/jobs/{job_id}")

    def gate(self, name):
        return os.path.join(self.root, name)

    def open_gate(self, name):
        with open(self.gate(name), "w") as f:
            f.write("go\n")


def main(description, body):
    """Runs body(opts, stack) within the time bound; prints PASS or the failure and the logs."""
    opts = args(description)
    bound(opts.timeout)
    stack = None
    try:
        stack = Stack(opts.bin, opts.keep)
        with stack:
            try:
                body(opts, stack)
            except BaseException:
                print(stack.dump_logs(), file=sys.stderr)
                raise
            finally:
                stack.save_logs(opts.artifacts)
    except Timeout as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
    finally:
        signal.alarm(0)
    print(f"PASS: {os.path.basename(sys.argv[0])}")
