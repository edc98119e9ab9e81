#!/usr/bin/env python3
"""The page in a real browser (headless Debian chromium through chromium-driver and selenium)
against a real pipeline: a submitted commit goes queued -> running -> passed on the dashboard
without a reload, and the job page shows the lines of the running test as it prints them.
Screenshots of each page are kept under --artifacts."""

import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import webstack  # noqa: E402
from webstack import wait_until  # noqa: E402

CHROMIUM = webstack.tool("chromium")
DRIVER = webstack.tool("chromedriver")
if not CHROMIUM or not DRIVER:
    webstack.missing("chromium and chromium-driver are not installed (tools/install-deps)")
try:
    from selenium import webdriver
    from selenium.webdriver.common.by import By
except ImportError:
    webstack.missing("python3-selenium is not installed (tools/install-deps)")


class Browser:
    """Chromium driven through a chromedriver the stack started (so it is stopped by its PID,
    with the browser in its process group, even when the test fails)."""

    def __init__(self, stack, artifacts):
        self.artifacts = artifacts
        port = webstack.free_port()
        stack.start("chromedriver", [DRIVER, f"--port={port}", "--allowed-ips=127.0.0.1"])
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: webstack.get(url + "/status", timeout=2)[0] == 200, 30, "chromedriver")
        o = webdriver.ChromeOptions()
        o.binary_location = CHROMIUM
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--window-size=1280,1200", f"--user-data-dir={os.path.join(stack.root, 'chromium')}",
                  "--no-first-run", "--disable-extensions"):
            o.add_argument(a)
        # The requests the page sends, for requested().
        o.set_capability("goog:loggingPrefs", {"performance": "ALL"})
        self.d = webdriver.Remote(command_executor=url, options=o)
        self.d.set_page_load_timeout(30)
        self.d.set_script_timeout(10)

    def quit(self):
        self.d.quit()

    def requested(self, part):
        """(url, headers) of each request the page sent since the last call whose URL has part.
        Headers the network stack adds (Last-Event-ID among them) come in a second event."""
        urls, headers = {}, {}
        for entry in self.d.get_log("performance"):
            m = json.loads(entry["message"])["message"]
            p = m.get("params", {})
            if m["method"] == "Network.requestWillBeSent":
                urls[p["requestId"]] = p["request"]["url"]
                headers.setdefault(p["requestId"], {}).update(p["request"].get("headers", {}))
            elif m["method"] == "Network.requestWillBeSentExtraInfo":
                headers.setdefault(p["requestId"], {}).update(p.get("headers", {}))
        return [(url, headers.get(rid, {})) for rid, url in urls.items() if part in url]

    def js(self, script, *a):
        return self.d.execute_script(script, *a)

    def text(self, css):
        els = self.d.find_elements(By.CSS_SELECTOR, css)
        return els[0].text if els else ""

    def attr(self, css, name):
        els = self.d.find_elements(By.CSS_SELECTOR, css)
        return els[0].get_attribute(name) if els else None

    def shot(self, name):
        if not self.artifacts:
            return
        os.makedirs(self.artifacts, exist_ok=True)
        path = os.path.join(self.artifacts, name)
        self.d.save_screenshot(path)
        print(f"screenshot: {path}")

    def go(self, hash_):
        # Hash routing: the page stays loaded.
        self.js("location.hash = arguments[0]", hash_)
        wait_until(lambda: self.js("return location.hash") == hash_, 10, f"route {hash_}")


def test(opts, stack):
    stack.start_dispatcher()
    web = stack.start_web()
    b = Browser(stack, opts.artifacts)
    try:
        run(b, stack, web)
    except BaseException:
        b.shot("failure.png")
        print("browser log:", b.d.get_log("browser"), file=sys.stderr)
        raise
    finally:
        b.quit()


def run(b, stack, web):
    b.d.get(web + "/")
    wait_until(lambda: b.attr("#conn", "data-state") == "open", 30, "the page's event stream to open")
    wait_until(lambda: b.d.find_elements(By.CSS_SELECTOR, "#runners"), 30, "the dashboard")
    # The stream starts where the status the page loaded ends: its event_id, "<feed>-<seq>".
    streams = b.requested("/api/events")
    assert len(streams) == 1 and re.search(r"/api/events\?last_event_id=\d+-\d+$", streams[0][0]), streams
    # The page's ANSI converter: HTML escaped, state kept across chunks, a sequence cut between
    # two chunks held until it is whole, unknown escapes dropped.
    html = b.js("const a = new Ansi(); return [a.push('<b>\\x1b[1;3'), a.push('2mok\\x1b['),"
                " a.push('0m & \\x1b[2Kx\\x1b[94mblue\\x1b[39m.')].join('|')")
    assert html == '&lt;b&gt;|<span class="ansi-bold ansi-fg-32">ok</span>| &amp; x' \
                   '<span class="ansi-fg-94">blue</span>.', html
    # Set on the loaded page: gone if the page ever reloads.
    b.js("window.__loadedOnce = 'yes'")

    # Queued: no runner yet, so the job waits where the page can see it.
    commit = stack.commit({".simpleci/test": webstack.gated_script([stack.gate("go1"), stack.gate("go2")])},
                          "a gated test")
    stack.submit(commit)
    row = f'#queue tr.job[data-status="queued"] a.commit[title="{commit}"]'
    wait_until(lambda: b.d.find_elements(By.CSS_SELECTOR, row), 30, "the commit queued on the dashboard")
    job_id = b.js("return document.querySelector(arguments[0]).closest('[data-job-id]').dataset.jobId", row)
    queued = f'#queue tr.job[data-job-id="{job_id}"]'
    assert b.text(queued + " .position") == "1", b.text(queued)
    assert b.text(queued + " a.commit") == commit[:7] and b.text(queued + " .status") == "queued", b.text(queued)
    b.shot("dashboard-queued.png")

    # Running: a runner joins and takes it; the test blocks on gate go1 after "line one".
    stack.start_runner("r1")
    card = f'#running .running-job[data-job-id="{job_id}"]'
    wait_until(lambda: b.attr(card, "data-status") == "running", 60, "the job running on the dashboard")
    wait_until(lambda: "line one" in b.text(card + " .tail"), 30, "the live tail showing line one")
    assert not b.d.find_elements(By.CSS_SELECTOR, f'#queue [data-job-id="{job_id}"]'), "still in the queue"
    r1 = '#runners tr.runner[data-runner="r1"]'
    wait_until(lambda: b.attr(r1, "data-state") == "busy", 10, "runner r1 busy on the dashboard")
    assert commit[:7] in b.text(r1), b.text(r1)
    b.shot("dashboard-running.png")

    # The job page: the lines printed so far, with colours, then the next one as it is printed.
    b.go(f"#/job/{job_id}")
    wait_until(lambda: b.attr("#job", "data-status") == "running", 30, "the job page saying running")
    wait_until(lambda: "line one" in b.text("#output"), 30, "line one on the job page")
    assert "line two" not in b.text("#output"), "line two before the test printed it"
    assert b.text("#job-runner") == "r1", b.text("#job-runner")
    assert b.text("#job-attempt") == "1", b.text("#job-attempt")
    assert b.text("#output .ansi-fg-32") == "green", b.d.find_element(By.ID, "output").get_attribute("innerHTML")
    assert b.text("#output .ansi-bold.ansi-fg-31") == "bold red"
    stack.open_gate("go1")
    wait_until(lambda: "line two" in b.text("#output"), 30, "line two appearing on the job page")
    assert b.attr("#job", "data-status") == "running", "the job should still run (gate go2 is closed)"
    assert "line three" not in b.text("#output")
    b.shot("job-running.png")

    # Back on the dashboard, the job ends: passed, in the recent results, no longer running.
    b.go("#/")
    wait_until(lambda: b.attr(card, "data-status") == "running", 30, "the running job on the dashboard again")
    stack.open_gate("go2")
    done = f'#recent tr.job[data-job-id="{job_id}"]'
    wait_until(lambda: b.attr(done, "data-status") == "passed", 60, "the job passed on the dashboard")
    wait_until(lambda: not b.d.find_elements(By.CSS_SELECTOR, card), 10, "the job gone from Running")
    assert b.text(done + " a.commit") == commit[:7] and b.text(done + " .status") == "passed", b.text(done)
    wait_until(lambda: b.d.find_elements(By.CSS_SELECTOR, f'#chart circle[data-job-id="{job_id}"]'), 10,
               "the job in the chart")
    b.shot("dashboard-passed.png")

    # The finished job's page: the whole output and how it ended.
    b.go(f"#/job/{job_id}")
    wait_until(lambda: b.attr("#job", "data-status") == "passed", 30, "the job page saying passed")
    wait_until(lambda: b.attr("#output", "data-done") == "true", 30, "the whole output read")
    out = b.text("#output")
    for line in ("simpleci test of " + commit, "line one", "line two", "line three"):
        assert line in out, f"{line!r} missing from the output:\n{out}"
    b.shot("job-passed.png")

    # The branch history.
    b.go("#/branch/main")
    wait_until(lambda: b.attr(f'#branch tr.job[data-job-id="{job_id}"]', "data-status") == "passed", 30,
               "the job in the branch history")
    b.shot("branch.png")

    # simpleci-web restarts: the page reconnects by itself, starts over from a new status (its
    # old Last-Event-ID means nothing to the new server: resync) and shows new jobs as before.
    b.go("#/")
    stack.restart_web()
    second = stack.commit({"README": "after the restart\n"}, "after the restart")
    stack.submit(second)
    row = f'#recent tr.job[data-status="passed"] a.commit[title="{second}"]'
    wait_until(lambda: b.d.find_elements(By.CSS_SELECTOR, row), 60, "a job after the restart passed on the page")
    wait_until(lambda: b.attr("#conn", "data-state") == "open", 10, "the event stream open again")
    b.shot("dashboard-after-restart.png")
    # The browser's own reconnect, with the id of the last event it got.
    again = b.requested("/api/events")
    assert again and all(re.fullmatch(r"\d+-\d+", h.get("Last-Event-ID", "")) for _, h in again), again

    assert b.js("return window.__loadedOnce") == "yes", "the page reloaded"


if __name__ == "__main__":
    webstack.main(__doc__, test)
