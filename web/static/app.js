// simpleCI's page: one file, no build step. It loads /api/status once, then keeps it current
// from the Server-Sent Events of /api/events (no polling); job output is read as a stream with
// fetch(). Views by hash: #/ (dashboard), #/job/ID, #/branch/NAME.
"use strict";

const FINAL = new Set(["passed", "failed", "timeout", "cancelled", "error"]);
const TAIL_LINES = 12;       // lines of a running job shown on the dashboard
const TAIL_KEEP = 8192;      // bytes of each running job's output kept for its tail
const MAX_TAILS = 3;         // browsers allow ~6 connections per host; the feed needs one
const RECENT_PER_BRANCH = 10;
const CHART_JOBS = 100;

// ---------- small helpers ----------

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) =>
    ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
const shortId = (commit) => String(commit || "").slice(0, 7);
const ms = (iso) => (iso ? Date.parse(iso) : NaN);

function fmtDuration(millis) {
  if (!Number.isFinite(millis) || millis < 0) return "";
  if (millis < 1000) return `${Math.round(millis)} ms`;
  const s = millis / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}
function fmtTime(iso) {
  const t = ms(iso);
  return Number.isFinite(t) ? new Date(t).toLocaleString() : "";
}
function jobDuration(job) {
  if (job.duration_ms) return job.duration_ms;
  const a = ms(job.started_at), b = ms(job.finished_at);
  return Number.isFinite(a) && Number.isFinite(b) ? b - a : NaN;
}
function queueWait(job) {
  const a = ms(job.created_at), b = ms(job.started_at);
  return Number.isFinite(a) && Number.isFinite(b) ? b - a : NaN;
}
// A commit by its short id with its status word, the way every list shows it.
function commitCell(job) {
  return `<a class="commit" href="#/job/${encodeURIComponent(job.job_id)}" title="${esc(job.commit)}">` +
    `${esc(shortId(job.commit))}</a> ${statusWord(job.status)}`;
}
function statusWord(status) {
  return `<span class="status status-${esc(status)}" data-role="status">${esc(status)}</span>`;
}
function branchLink(branch) {
  return branch ? `<a class="branch" href="#/branch/${encodeURIComponent(branch)}">${esc(branch)}</a>`
    : `<span class="muted">(none)</span>`;
}
// Live clocks: an element with data-since (ISO time) shows the time elapsed since then.
function since(iso) {
  return `<span class="since" data-since="${esc(iso)}">${esc(fmtDuration(Date.now() - ms(iso)))}</span>`;
}
function tickClocks() {
  for (const el of document.querySelectorAll("[data-since]")) {
    el.textContent = fmtDuration(Date.now() - ms(el.dataset.since));
  }
}

async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  if (!r.ok) {
    let msg = `${r.status} ${r.statusText}`;
    try { msg = (await r.json()).error || msg; } catch (_) { /* not JSON */ }
    throw new Error(msg);
  }
  return r.json();
}

// ---------- ANSI colours ----------

// Turns text with SGR escapes (0 reset, 1 bold, 22 normal, 30-37 and 90-97 foreground, 39
// default) into HTML, escaping the text first. Keeps its state across chunks, and holds back an
// escape sequence cut at the end of a chunk until the next one completes it. Other escapes are
// dropped.
class Ansi {
  constructor() { this.bold = false; this.fg = 0; this.pending = ""; }

  push(text) {
    text = this.pending + text;
    this.pending = "";
    let html = "";
    let i = 0;
    while (i < text.length) {
      const e = text.indexOf("\x1b", i);
      if (e < 0) { html += this.span(text.slice(i)); break; }
      html += this.span(text.slice(i, e));
      const m = /^\x1b\[([0-9;?]*)([\x40-\x7e])/.exec(text.slice(e, e + 64));
      if (!m) {
        if (text.length - e < 64 && /^\x1b(\[[0-9;?]*)?$/.test(text.slice(e))) {
          this.pending = text.slice(e);  // cut mid-sequence: wait for the rest
          break;
        }
        i = e + 1;  // a lone ESC: drop it
        continue;
      }
      if (m[2] === "m") this.sgr(m[1]);
      i = e + m[0].length;
    }
    return html;
  }

  sgr(params) {
    for (const p of (params === "" ? "0" : params).split(";")) {
      const n = Number(p || 0);
      if (n === 0) { this.bold = false; this.fg = 0; }
      else if (n === 1) this.bold = true;
      else if (n === 22) this.bold = false;
      else if ((n >= 30 && n <= 37) || (n >= 90 && n <= 97)) this.fg = n;
      else if (n === 39) this.fg = 0;
    }
  }

  span(s) {
    if (!s) return "";
    const cls = [];
    if (this.bold) cls.push("ansi-bold");
    if (this.fg) cls.push(`ansi-fg-${this.fg}`);
    return cls.length ? `<span class="${cls.join(" ")}">${esc(s)}</span>` : esc(s);
  }
}
const ansiToHtml = (text) => new Ansi().push(text);

// ---------- output streams ----------

// Reads /api/jobs/ID/output as it is written (chunked while the job runs; the response ends
// when the job is final) and hands each piece of text to onText. A dropped connection resumes
// at the byte offset reached. Returns a handle whose stop() cancels it.
function streamOutput(jobId, onText, onEnd, offset = 0) {
  const ctl = { stopped: false, offset, abort: null };
  const decoder = new TextDecoder("utf-8");
  (async () => {
    let delay = 500;
    while (!ctl.stopped) {
      const ac = new AbortController();
      ctl.abort = ac;
      try {
        const r = await fetch(`/api/jobs/${encodeURIComponent(jobId)}/output?offset=${ctl.offset}`,
                              { signal: ac.signal, cache: "no-store" });
        if (!r.ok) throw new Error(`output: ${r.status}`);
        const reader = r.body.getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          ctl.offset += value.length;
          onText(decoder.decode(value, { stream: true }));
          delay = 500;
        }
        onText(decoder.decode());
        if (!ctl.stopped && onEnd) onEnd();
        return;
      } catch (e) {
        if (ctl.stopped) return;
        await new Promise((res) => setTimeout(res, delay));
        delay = Math.min(delay * 2, 8000);
      }
    }
  })();
  ctl.stop = () => { ctl.stopped = true; if (ctl.abort) ctl.abort.abort(); };
  return ctl;
}

// The last lines of each running job, for the dashboard, kept while the job runs.
const tails = new Map();  // job_id -> {text, stream}

function followTails() {
  const running = state.status ? state.status.running : [];
  const wanted = new Set(running.slice(0, MAX_TAILS).map((j) => String(j.job_id)));
  for (const [id, t] of tails) {
    if (!wanted.has(id)) { t.stream.stop(); tails.delete(id); }
  }
  for (const id of wanted) {
    if (tails.has(id)) continue;
    const t = { text: "" };
    t.stream = streamOutput(id, (s) => {
      t.text = (t.text + s).slice(-TAIL_KEEP);
      showTail(id);
    });
    tails.set(id, t);
  }
}
function tailHtml(id) {
  const t = tails.get(String(id));
  if (!t) return `<span class="muted">(output on the job page)</span>`;
  const lines = t.text.split("\n");
  if (lines.length && lines[lines.length - 1] === "") lines.pop();
  return ansiToHtml(lines.slice(-TAIL_LINES).join("\n"));
}
function showTail(id) {
  const pre = document.querySelector(`.running-job[data-job-id="${CSS.escape(id)}"] .tail`);
  if (pre) pre.innerHTML = tailHtml(id);
}

// ---------- the model, kept by events ----------

const state = {
  status: null,      // the last /api/status, then changed by each event
  pending: [],       // events that came before the status they build on
  listeners: [],     // the current view's event hook
  finishedSeen: [],  // finished jobs this page heard of, for the chart
};

function sameId(a, b) { return String(a) === String(b); }
function without(list, id) { return list.filter((j) => !sameId(j.job_id, id)); }

function applyEvent(ev) {
  const s = state.status;
  if (!s) { state.pending.push(ev); return; }
  if (typeof ev.seq === "number" && ev.seq <= s.seq) return;  // already in the status
  if (typeof ev.seq === "number") s.seq = ev.seq;
  if (typeof ev.queue_length === "number") s.queue_length = ev.queue_length;
  const job = ev.job;
  if (ev.kind.startsWith("job_") && !(job && job.job_id !== undefined)) return;
  if (ev.kind.startsWith("runner_") && !(ev.runner && ev.runner.name)) return;
  switch (ev.kind) {
    case "job_queued":
    case "job_requeued":
      s.running = without(s.running, job.job_id);
      s.queued = without(s.queued, job.job_id).concat([job]);
      break;
    case "job_started":
      s.queued = without(s.queued, job.job_id);
      s.running = without(s.running, job.job_id).concat([job]);
      break;
    case "job_finished":
      s.queued = without(s.queued, job.job_id);
      s.running = without(s.running, job.job_id);
      s.recent = [job].concat(without(s.recent, job.job_id)).slice(0, 1000);
      break;
    case "runner_left":
      s.runners = s.runners.filter((r) => r.name !== ev.runner.name);
      break;
    default:
      break;
  }
  // Runner events, and job events that name their runner (job_started), carry its new state.
  if (ev.runner && ev.runner.name && ev.kind !== "runner_left") {
    s.runners = s.runners.filter((r) => r.name !== ev.runner.name).concat([ev.runner])
      .sort((a, b) => a.name.localeCompare(b.name));
  }
  for (const f of state.listeners) f(ev);
}

async function loadStatus() {
  const s = await getJSON("/api/status");
  for (const k of ["runners", "queued", "running", "recent"]) s[k] = s[k] || [];
  state.status = s;
  const pending = state.pending;
  state.pending = [];
  for (const ev of pending) applyEvent(ev);
  refresh();
}

// The stream starts where the status it is given ends (its event_id, "<feed>-<seq>"), so no event
// falls between the two. After that the browser resumes by itself: on a reconnect it sends the id
// of the last event it got as Last-Event-ID, which the server takes over the URL's.
function connectEvents(eventId) {
  const conn = document.getElementById("conn");
  const url = eventId ? `/api/events?last_event_id=${encodeURIComponent(eventId)}` : "/api/events";
  const es = new EventSource(url);
  const show = (st, text) => { conn.dataset.state = st; conn.textContent = text; };
  let opened = false;
  es.onopen = () => {
    show("open", "live");
    // Started without a status (it failed to load): ask again now the stream is open; events
    // that come first wait in state.pending.
    if (!eventId && !opened) loadStatus().catch(showError);
    opened = true;
  };
  es.onerror = () => show(es.readyState === EventSource.CLOSED ? "error" : "connecting",
                          es.readyState === EventSource.CLOSED ? "disconnected" : "reconnecting");
  const kinds = ["job_queued", "job_started", "job_finished", "job_requeued",
                 "runner_joined", "runner_left", "runner_changed"];
  for (const kind of kinds) {
    es.addEventListener(kind, (e) => {
      let ev;
      try { ev = JSON.parse(e.data); } catch (_) { return; }
      ev.kind = ev.kind || kind;
      applyEvent(ev);
      scheduleRefresh();
    });
  }
  // The server could not replay what we missed: start again from a fresh status.
  es.addEventListener("resync", () => {
    state.status = null;
    loadStatus().catch(showError);
  });
}

// Many events in a burst redraw once. (A timer, not requestAnimationFrame, which a hidden tab
// never runs.)
let refreshQueued = false;
function scheduleRefresh() {
  if (refreshQueued) return;
  refreshQueued = true;
  setTimeout(() => { refreshQueued = false; refresh(); }, 50);
}

// ---------- views ----------

const view = () => document.getElementById("view");
let current = { name: "", refresh: () => {}, leave: () => {} };

function route() {
  current.leave();
  state.listeners = [];
  const h = decodeURIComponent(location.hash.replace(/^#\/?/, ""));
  let m;
  if ((m = /^job\/(\d+)$/.exec(h))) current = jobView(m[1]);
  else if ((m = /^branch\/(.+)$/.exec(h))) current = branchView(m[1]);
  else current = dashboardView();
  view().dataset.view = current.name;
  refresh();
}
function refresh() { current.refresh(); }
function showError(e) {
  view().insertAdjacentHTML("afterbegin", `<p class="error" id="error">${esc(e.message || e)}</p>`);
}

// The dashboard: runners, queue, running jobs with their tails, recent results by branch, chart.
function stopTails() {
  for (const t of tails.values()) t.stream.stop();
  tails.clear();
}

function dashboardView() {
  // Leaving it frees the tails' connections (a browser has about six per host).
  const v = { name: "dashboard", leave: stopTails };
  let chartJobs = [];
  getJSON(`/api/jobs?limit=${CHART_JOBS}`).then((r) => { chartJobs = r.jobs || []; refresh(); })
    .catch(() => {});
  v.refresh = () => {
    const s = state.status;
    if (!s) return;
    followTails();
    // The web's recent list starts empty when it starts: the store's newest jobs fill it in.
    const finished = mergeJobs(s.recent, chartJobs).filter((j) => FINAL.has(j.status));
    view().innerHTML = feedHtml(s) +
      runnersHtml(s) + queueHtml(s) + runningHtml(s) + recentHtml(finished) +
      `<section id="chart"><h2>Durations and queue wait</h2>${chartHtml(finished.slice(0, CHART_JOBS))}</section>`;
  };
  return v;
}

function mergeJobs(...lists) {
  const byId = new Map();
  for (const list of lists) for (const j of list) if (!byId.has(String(j.job_id))) byId.set(String(j.job_id), j);
  return [...byId.values()].sort((a, b) => Number(b.job_id) - Number(a.job_id));
}

function runnersHtml(s) {
  const rows = s.runners.map((r) => {
    // jobs: the ids of the jobs it runs.
    const ids = (Array.isArray(r.jobs) ? r.jobs : []).map(String);
    const jobs = s.running.filter((j) => j.runner === r.name || ids.includes(String(j.job_id)));
    const unknown = ids.filter((id) => !jobs.some((j) => sameId(j.job_id, id)))
      .map((id) => `<a href="#/job/${encodeURIComponent(id)}">#${esc(id)}</a>`);
    const cells = jobs.map(commitCell).concat(unknown);
    const current = cells.length ? cells.join("<br>") : `<span class="muted">—</span>`;
    return `<tr class="runner" data-runner="${esc(r.name)}" data-state="${esc(r.state)}">` +
      `<td>${esc(r.name)}</td><td class="state-${esc(r.state)}">${esc(r.state)}</td>` +
      `<td>${esc(Math.max(ids.length, jobs.length))}/${esc(r.capacity)}</td><td>${current}</td>` +
      `<td class="muted">${esc(fmtTime(r.last_seen))}</td></tr>`;
  }).join("");
  return `<section id="runners"><h2>Runners <span class="count">${s.runners.length}</span></h2>` +
    (rows ? `<table><thead><tr><th>name</th><th>state</th><th>jobs</th><th>current job</th><th>last seen</th></tr></thead><tbody>${rows}</tbody></table>`
      : `<p class="empty">No runner connected.</p>`) + `</section>`;
}

function queueHtml(s) {
  const rows = s.queued.map((j, i) =>
    `<tr class="job" data-job-id="${esc(j.job_id)}" data-status="${esc(j.status)}">` +
    `<td class="position">${i + 1}</td><td>${commitCell(j)}</td><td>${branchLink(j.branch)}</td>` +
    `<td>${j.attempt > 1 ? `attempt ${esc(j.attempt)}` : ""}</td>` +
    `<td>waiting ${since(j.created_at)}</td></tr>`).join("");
  const more = s.queue_length > s.queued.length ? `<p class="muted">and ${s.queue_length - s.queued.length} more</p>` : "";
  return `<section id="queue"><h2>Queue <span class="count" id="queue-length">${esc(s.queue_length)}</span></h2>` +
    (rows ? `<table><thead><tr><th>#</th><th>commit</th><th>branch</th><th></th><th>wait</th></tr></thead><tbody>${rows}</tbody></table>${more}`
      : `<p class="empty">Nothing waiting.</p>`) + `</section>`;
}

function runningHtml(s) {
  const cards = s.running.map((j) =>
    `<div class="running-job job" data-job-id="${esc(j.job_id)}" data-status="${esc(j.status)}">` +
    `<div>${commitCell(j)} ${branchLink(j.branch)} on <b>${esc(j.runner)}</b>` +
    `${j.attempt > 1 ? `, attempt ${esc(j.attempt)}` : ""}, running ${since(j.started_at)}</div>` +
    `<pre class="tail">${tailHtml(j.job_id)}</pre></div>`).join("");
  return `<section id="running"><h2>Running <span class="count">${s.running.length}</span></h2>` +
    (cards || `<p class="empty">Nothing running.</p>`) + `</section>`;
}

function jobRow(j, withBranch) {
  return `<tr class="job" data-job-id="${esc(j.job_id)}" data-status="${esc(j.status)}">` +
    `<td>${commitCell(j)}</td>` + (withBranch ? `<td>${branchLink(j.branch)}</td>` : "") +
    `<td>${esc(fmtDuration(jobDuration(j)))}</td><td>${esc(j.runner)}</td>` +
    `<td>${j.attempt > 1 ? esc(j.attempt) : ""}</td>` +
    `<td class="muted">${esc(fmtTime(j.finished_at || j.started_at || j.created_at))}</td>` +
    `<td><a href="#/job/${encodeURIComponent(j.job_id)}">#${esc(j.job_id)}</a></td></tr>`;
}
const JOB_HEAD = (withBranch) => `<thead><tr><th>commit</th>${withBranch ? "<th>branch</th>" : ""}` +
  `<th>duration</th><th>runner</th><th>attempt</th><th>when</th><th>job</th></tr></thead>`;

// The web lost its feed from the dispatcher: what the page shows may be old.
function feedHtml(s) {
  return s.feed === "interrupted"
    ? `<p class="error" id="feed-interrupted">The web server has lost the dispatcher's feed; this may be out of date.</p>` : "";
}

function recentHtml(recent) {
  const byBranch = new Map();
  for (const j of recent) {
    if (!byBranch.has(j.branch)) byBranch.set(j.branch, []);
    const list = byBranch.get(j.branch);
    if (list.length < RECENT_PER_BRANCH) list.push(j);
  }
  const groups = [...byBranch.entries()].map(([branch, jobs]) =>
    `<div class="branch-group" data-branch="${esc(branch)}"><div class="branch-head"><h3>${branchLink(branch)}</h3>` +
    (branch ? `<img alt="" src="/badge/${encodeURIComponent(branch)}.svg?j=${esc(jobs[0].job_id)}">` : "") +
    `</div><table>${JOB_HEAD(false)}<tbody>${jobs.map((j) => jobRow(j, false)).join("")}</tbody></table></div>`).join("");
  return `<section id="recent"><h2>Recent results</h2>${groups || `<p class="empty">No results yet.</p>`}</section>`;
}

// Job durations (solid) and queue waits (dashed) of finished jobs, oldest on the left; each
// point coloured by status. Drawn as SVG by hand.
function chartHtml(jobs) {
  const pts = jobs.slice().reverse().map((j) => ({ j, d: jobDuration(j), w: queueWait(j) }))
    .filter((p) => Number.isFinite(p.d));
  if (pts.length < 1) return `<p class="empty">No finished jobs to chart yet.</p>`;
  const W = 1000, H = 220, L = 56, R = 10, T = 10, B = 24;
  const max = Math.max(1, ...pts.map((p) => Math.max(p.d, Number.isFinite(p.w) ? p.w : 0)));
  const x = (i) => L + (pts.length === 1 ? (W - L - R) / 2 : (i * (W - L - R)) / (pts.length - 1));
  const y = (v) => T + (H - T - B) * (1 - v / max);
  let grid = "";
  for (let k = 0; k <= 4; k++) {
    const v = (max * k) / 4;
    grid += `<line class="grid" x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}"/>` +
      `<text x="${L - 6}" y="${y(v) + 4}" text-anchor="end">${esc(fmtDuration(v))}</text>`;
  }
  const line = (f, cls) => {
    const d = pts.map((p, i) => [i, f(p)]).filter(([, v]) => Number.isFinite(v))
      .map(([i, v], k) => `${k ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join("");
    return d ? `<path class="${cls}" d="${d}"/>` : "";
  };
  const dots = pts.map((p, i) =>
    `<a href="#/job/${encodeURIComponent(p.j.job_id)}"><circle class="${esc(p.j.status)}" data-job-id="${esc(p.j.job_id)}" cx="${x(i).toFixed(1)}" cy="${y(p.d).toFixed(1)}" r="3.5">` +
    `<title>${esc(shortId(p.j.commit))} ${esc(p.j.status)}: ${esc(fmtDuration(p.d))}, waited ${esc(fmtDuration(p.w))}</title></circle></a>`).join("");
  const waits = pts.map((p, i) => (Number.isFinite(p.w)
    ? `<rect class="wait-dot" x="${(x(i) - 2.5).toFixed(1)}" y="${(y(p.w) - 2.5).toFixed(1)}" width="5" height="5"/>` : "")).join("");
  const first = fmtTime(pts[0].j.finished_at), last = fmtTime(pts[pts.length - 1].j.finished_at);
  return `<svg class="chart" viewBox="0 0 ${W} ${H}" preserveAspectRatio="none" data-points="${pts.length}">` +
    grid + `<line class="axis" x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}"/>` +
    line((p) => p.d, "duration") + line((p) => p.w, "wait") + waits + dots +
    `<text x="${L}" y="${H - 6}">${esc(first)}</text><text x="${W - R}" y="${H - 6}" text-anchor="end">${esc(last)}</text></svg>` +
    `<div class="legend"><span class="l-duration">— duration</span> &nbsp; <span class="l-wait">- - queue wait</span> &nbsp; (${pts.length} jobs)</div>`;
}

// A job: its facts, and its whole output, streaming while it runs, with ANSI colours.
function jobView(id) {
  const v = { name: "job" };
  let job = null;
  let error = "";
  const ansi = new Ansi();
  let stream = null;
  view().innerHTML = `<section id="job" data-job-id="${esc(id)}" data-status=""><h2>Job #${esc(id)}</h2>` +
    `<div id="job-info"><p class="muted">Loading…</p></div></section>` +
    `<section><h2>Output <span class="count" id="output-state"></span></h2><pre id="output" data-done="false"></pre></section>`;
  const out = document.getElementById("output");

  const load = () => getJSON(`/api/jobs/${encodeURIComponent(id)}`)
    .then((j) => { job = j; error = ""; v.refresh(); })
    .catch((e) => { error = e.message; v.refresh(); });
  let left = false;
  const follow = (offset) => {
    stream = streamOutput(id, (text) => {
      const atBottom = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
      out.insertAdjacentHTML("beforeend", ansi.push(text));
      if (atBottom) out.scrollTop = out.scrollHeight;
    }, () => {
      // The stream ends when the job is final: show how it ended. (A job still queued may
      // have had nothing to stream yet: follow again from where it was.)
      const reached = stream.offset;
      load().then(() => {
        if (left) return;
        if (job && FINAL.has(job.status)) out.dataset.done = "true";
        else setTimeout(() => { if (!left) follow(reached); }, 300);
      });
    }, offset);
  };
  load().then(() => { if (job) follow(0); });
  // Events about this job carry its new state; take it without asking again.
  state.listeners.push((ev) => {
    if (ev.job && sameId(ev.job.job_id, id)) { job = Object.assign({}, job, ev.job); v.refresh(); }
  });
  v.leave = () => { left = true; if (stream) stream.stop(); };
  v.refresh = () => {
    const box = document.getElementById("job");
    const info = document.getElementById("job-info");
    if (!box || !info) return;
    if (error) { info.innerHTML = `<p class="error" id="error">${esc(error)}</p>`; return; }
    if (!job) return;
    box.dataset.status = job.status;
    document.getElementById("output-state").textContent =
      FINAL.has(job.status) ? "" : (job.status === "running" ? "(live)" : "(waiting to start)");
    const wait = queueWait(job);
    info.innerHTML = `<dl class="info">` +
      `<dt>commit</dt><dd><span class="commit" id="job-commit">${esc(job.commit)}</span> ${statusWord(job.status)}</dd>` +
      `<dt>branch</dt><dd>${branchLink(job.branch)}</dd>` +
      `<dt>status</dt><dd id="job-status">${esc(job.status)}${job.exit_code !== undefined && FINAL.has(job.status) ? ` (exit code ${esc(job.exit_code)})` : ""}</dd>` +
      `<dt>attempt</dt><dd id="job-attempt">${esc(job.attempt)}</dd>` +
      `<dt>runner</dt><dd id="job-runner">${esc(job.runner) || `<span class="muted">—</span>`}</dd>` +
      `<dt>queued</dt><dd>${esc(fmtTime(job.created_at))}</dd>` +
      `<dt>started</dt><dd>${esc(fmtTime(job.started_at))}${Number.isFinite(wait) ? ` <span class="muted">(waited ${esc(fmtDuration(wait))})</span>` : ""}</dd>` +
      `<dt>finished</dt><dd>${esc(fmtTime(job.finished_at))}</dd>` +
      `<dt>duration</dt><dd id="job-duration">${FINAL.has(job.status) ? esc(fmtDuration(jobDuration(job)))
        : (job.started_at ? since(job.started_at) : "")}</dd>` +
      (job.truncated ? `<dt>output</dt><dd>stored output truncated</dd>` : "") +
      `</dl>`;
  };
  return v;
}

// A branch: its jobs, newest first, one page at a time, with new ones arriving by event.
function branchView(branch) {
  const v = { name: "branch", leave: () => {} };
  let jobs = [];
  let error = "";
  let more = false;
  const PAGE = 50;
  const fetchPage = (before) =>
    getJSON(`/api/jobs?branch=${encodeURIComponent(branch)}&limit=${PAGE}${before ? `&before=${before}` : ""}`)
      .then((r) => { jobs = mergeJobs(jobs, r.jobs || []); more = (r.jobs || []).length === PAGE; v.refresh(); })
      .catch((e) => { error = e.message; v.refresh(); });
  fetchPage(0);
  state.listeners.push((ev) => {
    if (ev.job && ev.job.branch === branch) {
      jobs = mergeJobs([ev.job], jobs);
      scheduleRefresh();
    }
  });
  window.loadOlder = () => fetchPage(jobs.length ? jobs[jobs.length - 1].job_id : 0);
  v.refresh = () => {
    const finished = jobs.filter((j) => FINAL.has(j.status));
    view().innerHTML =
      `<section id="branch" data-branch="${esc(branch)}"><div class="branch-head"><h2>Branch ${esc(branch)}</h2>` +
      `<img alt="" src="/badge/${encodeURIComponent(branch)}.svg?j=${esc(finished.length ? finished[0].job_id : 0)}"></div>` +
      (error ? `<p class="error" id="error">${esc(error)}</p>` : "") +
      (jobs.length ? `<table>${JOB_HEAD(false)}<tbody>${jobs.map((j) => jobRow(j, false)).join("")}</tbody></table>`
        : `<p class="empty">No jobs for this branch.</p>`) +
      (more ? `<p><button id="older" onclick="loadOlder()">Older</button></p>` : "") + `</section>` +
      `<section id="chart"><h2>Durations and queue wait</h2>${chartHtml(finished.slice(0, CHART_JOBS))}</section>`;
  };
  return v;
}

// ---------- start ----------

window.addEventListener("hashchange", route);
setInterval(tickClocks, 1000);
route();
loadStatus().then(() => connectEvents(state.status.event_id), (e) => {
  showError(e);
  connectEvents("");
});
