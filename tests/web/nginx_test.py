#!/usr/bin/env python3
"""simpleci-web behind a real nginx (Debian), with the proxy settings of docs/WEB.md: the
Server-Sent Events and a running job's output arrive through it while the job runs, not when it
ends. nginx runs as the test's user from a temporary prefix, in the foreground."""

import http.client
import json
import os
import socket
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import webstack  # noqa: E402
from webstack import wait_until  # noqa: E402

NGINX = webstack.tool("nginx")
if not NGINX:
    webstack.missing("nginx is not installed (tools/install-deps)")

# The location block is the one docs/WEB.md shows; the rest keeps nginx inside its prefix.
CONFIG = """daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;

    server {{
        listen 127.0.0.1:{port};

        location / {{
            proxy_pass http://{upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_buffering off;
            proxy_cache off;
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
        }}
    }}
}}
"""


def start_nginx(stack, upstream):
    prefix = os.path.join(stack.root, "nginx")
    os.makedirs(prefix)
    # Workers of a root master run as nobody: let them in.
    os.chmod(stack.root, 0o755)
    os.chmod(prefix, 0o755)
    port = webstack.free_port()
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as f:
        f.write(CONFIG.format(prefix=prefix, port=port, upstream=upstream))
    check = subprocess.run([NGINX, "-t", "-p", prefix, "-c", conf, "-e", os.path.join(prefix, "error.log")],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, f"nginx -t: {check.stderr}"
    stack.start("nginx", [NGINX, "-p", prefix, "-c", conf, "-e", os.path.join(prefix, "error.log")])
    base = f"127.0.0.1:{port}"

    def up():
        if not stack.alive("nginx"):
            raise AssertionError("nginx exited:\n" + stack.output_of("nginx") + read(prefix, "error.log"))
        return webstack.get(f"http://{base}/api/status", timeout=2)[0] == 200
    wait_until(up, 30, f"nginx proxying on {base}")
    return base


def read(folder, name):
    try:
        with open(os.path.join(folder, name)) as f:
            return f.read()
    except OSError:
        return ""


class Stream:
    """A streaming GET, read line by line by a thread (a socket file cannot be read again after
    a timeout); the test waits on what arrived, with deadlines."""

    def __init__(self, host, path, headers=None):
        h, p = host.split(":")
        self.conn = http.client.HTTPConnection(h, int(p), timeout=60)
        self.conn.request("GET", path, headers=headers or {})
        self.resp = self.conn.getresponse()
        self.lock = threading.Lock()
        self.text = ""
        self.eof = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    break
                with self.lock:
                    self.text += line.decode("utf-8", "replace")
        except Exception:  # noqa: BLE001 - closed under the reader, or cut: the end either way
            pass
        self.eof = True

    @property
    def seen(self):
        with self.lock:
            return self.text

    def header(self, name):
        return self.resp.getheader(name) or ""

    def read_until(self, pred, timeout, what):
        """Waits until pred(all text so far) holds; fails when the stream ends first."""
        def ready():
            if pred(self.seen):
                return True
            if self.eof and not pred(self.seen):
                raise AssertionError(f"the stream ended before {what}; got:\n{self.seen[-2000:]}")
            return False
        try:
            wait_until(ready, timeout, what)
        except AssertionError as e:
            raise AssertionError(f"{e}; got:\n{self.seen[-2000:]}") from None
        return self.seen

    def ended(self, timeout):
        try:
            return wait_until(lambda: self.eof, timeout, "the end of the stream")
        except AssertionError:
            return False

    def close(self):
        # Shut the socket first: the reader thread, blocked in a read, holds the file's lock
        # that close() needs.
        try:
            self.resp.fp.raw._sock.shutdown(socket.SHUT_RDWR)
        except (AttributeError, OSError):
            pass
        self.conn.close()


def frames(text, kind):
    """(id, data object) of each SSE event of kind in text."""
    out = []
    for block in text.split("\n\n"):
        lines = block.split("\n")
        if f"event: {kind}" in lines:
            data = "".join(line[5:].strip() for line in lines if line.startswith("data:"))
            ids = [line[3:].strip() for line in lines if line.startswith("id:")]
            out.append((ids[0] if ids else "", json.loads(data)))
    return out


def events(text, kind):
    """The data objects of the SSE events of kind in text."""
    return [data for _, data in frames(text, kind)]


def test(opts, stack):
    stack.start_dispatcher()
    stack.start_runner("r1")
    web = stack.start_web()
    proxy = start_nginx(stack, web[len("http://"):])

    sse = Stream(proxy, "/api/events", {"Accept": "text/event-stream"})
    try:
        assert sse.resp.status == 200, sse.resp.status
        assert sse.header("Content-Type").startswith("text/event-stream"), sse.header("Content-Type")

        commit = stack.commit({".simpleci/test": webstack.gated_script([stack.gate("go")])}, "gated")
        stack.submit(commit)
        started = lambda t: [e for e in events(t, "job_started") if e["job"]["commit"] == commit]
        sse.read_until(lambda t: started(t), 60, "job_started through nginx")
        job_id = started(sse.seen)[0]["job"]["job_id"]

        out = Stream(proxy, f"/api/jobs/{job_id}/output")
        try:
            assert out.resp.status == 200, out.resp.status
            out.read_until(lambda t: "line one" in t, 30, "line one of the running job through nginx")
            assert stack.job(job_id)["status"] == "running", "the job should still run"
            assert "line two" not in out.seen
            assert not events(sse.seen, "job_finished"), "finished before the gate opened"
            stack.open_gate("go")
            out.read_until(lambda t: "line two" in t, 30, "line two through nginx")
            assert out.ended(30), "the output stream should end when the job is final"
        finally:
            out.close()
        finished = lambda t: [e for e in events(t, "job_finished") if e["job"]["commit"] == commit]
        sse.read_until(lambda t: finished(t), 60, "job_finished through nginx")
        assert finished(sse.seen)[0]["job"]["status"] == "passed", finished(sse.seen)
    finally:
        sse.close()

    # A reconnect through nginx with the id of job_started ("<feed>-<seq>") replays what followed.
    [(start_id, start)] = [(i, e) for i, e in frames(sse.seen, "job_started") if e["job"]["commit"] == commit]
    assert start_id == f"{start['feed']}-{start['seq']}", (start_id, start)
    again = Stream(proxy, "/api/events", {"Accept": "text/event-stream", "Last-Event-ID": start_id})
    try:
        assert again.resp.status == 200, again.resp.status
        again.read_until(lambda t: finished(t), 30, "job_finished replayed through nginx")
        assert not events(again.seen, "resync") and not events(again.seen, "job_started"), again.seen
    finally:
        again.close()
    if opts.artifacts:
        os.makedirs(opts.artifacts, exist_ok=True)
        with open(os.path.join(opts.artifacts, "nginx-access.log"), "w") as f:
            f.write(read(os.path.join(stack.root, "nginx"), "access.log"))


if __name__ == "__main__":
    webstack.main(__doc__, test)
