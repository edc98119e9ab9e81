#!/usr/bin/env python3
"""simpleci-web's /metrics with Debian's Prometheus: `promtool check metrics` accepts it, and a
real Prometheus server (temporary config and storage, scraping every second on loopback) sees
simpleci_jobs_finished_total rise after a job."""

import json
import os
import subprocess
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import webstack  # noqa: E402
from webstack import wait_until  # noqa: E402

PROMETHEUS = webstack.tool("prometheus")
PROMTOOL = webstack.tool("promtool")
if not PROMETHEUS or not PROMTOOL:
    webstack.missing("prometheus (with promtool) is not installed (tools/install-deps)")

CONFIG = """global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: simpleci
    metrics_path: /metrics
    static_configs:
      - targets: ["{target}"]
"""


def check_metrics(web, artifacts, want=()):
    status, body = webstack.get(web + "/metrics")
    assert status == 200, f"/metrics: {status} {body[:200]!r}"
    text = body.decode()
    if artifacts:
        os.makedirs(artifacts, exist_ok=True)
        with open(os.path.join(artifacts, "metrics.txt"), "w") as f:
            f.write(text)
    # promtool reads the exposition on stdin; lint findings and errors make it exit non-zero.
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert r.returncode == 0, f"promtool check metrics:\n{r.stdout.decode()}{r.stderr.decode()}\n{text}"
    for name in want:
        assert name in text, f"no {name} in /metrics:\n{text}"
    return text


def start_prometheus(stack, web):
    folder = os.path.join(stack.root, "prometheus")
    os.makedirs(os.path.join(folder, "data"))
    conf = os.path.join(folder, "prometheus.yml")
    with open(conf, "w") as f:
        f.write(CONFIG.format(target=web[len("http://"):]))
    r = subprocess.run([PROMTOOL, "check", "config", conf], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"promtool check config: {r.stdout}{r.stderr}"
    port = webstack.free_port()
    api = f"http://127.0.0.1:{port}"
    stack.start("prometheus", [PROMETHEUS, f"--config.file={conf}", f"--storage.tsdb.path={folder}/data",
                               f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"])

    def ready():
        if not stack.alive("prometheus"):
            raise AssertionError("prometheus exited:\n" + stack.output_of("prometheus"))
        return webstack.get(api + "/-/ready", timeout=2)[0] == 200
    wait_until(ready, 60, f"prometheus ready on {api}")
    return api


def query(api, promql):
    """The value of an instant query that yields one sample; None when it yields none."""
    r = webstack.get_json(f"{api}/api/v1/query?query={urllib.parse.quote(promql)}")
    assert r["status"] == "success", json.dumps(r)
    result = r["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def test(opts, stack):
    stack.start_dispatcher()
    stack.start_runner("r1")
    web = stack.start_web()
    # Before any job: the counters the dispatcher has not counted yet are not there.
    check_metrics(web, opts.artifacts, want=["simpleci_queue_length", "simpleci_build_info"])
    api = start_prometheus(stack, web)

    wait_until(lambda: query(api, 'up{job="simpleci"}') == 1, 60, "prometheus scraping simpleci-web")
    # Nothing has finished yet; a counter with no sample yet counts as 0.
    finished = 'sum(simpleci_jobs_finished_total) or vector(0)'
    before = query(api, finished)

    commit = stack.commit({"README": "one more\n"}, "a job for the counter")
    stack.submit(commit)
    job = stack.job_of(commit)
    wait_until(lambda: stack.job(job["job_id"])["status"] == "passed", 60, "the job to pass")
    after = wait_until(lambda: (lambda v: v if v is not None and v > before else None)(query(api, finished)),
                       60, f"simpleci_jobs_finished_total above {before} in prometheus")
    passed = query(api, 'sum(simpleci_jobs_finished_total{status="passed"})')
    print(f"simpleci_jobs_finished_total: {before} -> {after} (passed: {passed})")
    assert passed is not None and passed >= 1, passed
    check_metrics(web, opts.artifacts, want=['simpleci_jobs_finished_total{status="passed"}',
                                             "simpleci_job_duration_seconds_bucket"])


if __name__ == "__main__":
    webstack.main(__doc__, test)
