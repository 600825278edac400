// concurry dashboard: renders each snapshot the server sends over /events.
// Hand-written, no dependencies; the chart is drawn on a canvas.
"use strict";

const $ = (id) => document.getElementById(id);
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const fmt = (n) => (n == null ? "–" : Number(n).toLocaleString("en-US"));
const LEVELS = ["critical", "high", "normal", "low"];

let latest = null;   // the newest snapshot
let pending = false; // a render is scheduled

function ago(ms) {
  if (ms < 60000) return (ms / 1000).toFixed(1) + "s ago";
  const s = Math.floor(ms / 1000);
  return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s ago";
}

function duration(ms) {
  if (ms == null) return "";
  if (ms < 1000) return ms + " ms";
  if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
  return Math.floor(ms / 60000) + "m" + String(Math.floor(ms / 1000) % 60).padStart(2, "0") + "s";
}

function bar(fraction, hot) {
  const pct = Math.max(0, Math.min(1, fraction)) * 100;
  return `<span class="bar${hot ? " hot" : ""}"><span style="width:${pct.toFixed(1)}%"></span></span>`;
}

// Replaces an element's content only when it changed: a button under the pointer stays
// put between ticks that bring nothing new.
function put(el, html) {
  if (el._html !== html) { el.innerHTML = html; el._html = html; }
}

// `row` gives a row's HTML without what changes every tick (ages, running durations):
// `live` writes those into the row's cells afterwards, so the rows (and their buttons)
// are replaced only when something else changed.
function rows(tbody, list, cols, row, empty, live) {
  put(tbody, list.length ? list.map(row).join("") : `<tr><td class="empty" colspan="${cols}">${esc(empty)}</td></tr>`);
  if (live) list.forEach((x, i) => tbody.rows[i] && live(tbody.rows[i], x));
}

function actionButton(kind, id, label, cls) {
  return `<button class="${cls || ""}" data-action="${kind}" data-id="${esc(id)}">${esc(label)}</button>`;
}

function render(s) {
  const actions = !!s.actions;
  $("where").textContent = `${s.server} · namespace ${s.namespace}`;
  $("mode").textContent = actions ? "actions enabled" : "read-only";
  $("mode").className = "pill" + (actions ? " actions" : "");
  $("updated").textContent = "updated " + new Date(s.at_ms).toLocaleTimeString();
  document.querySelectorAll(".actions-only").forEach((el) => (el.hidden = !actions));

  const errs = s.errors || [];
  if (!s.connected) errs.unshift("the dashboard is not connected to " + s.server);
  $("errors").hidden = errs.length === 0;
  $("errors").textContent = errs.join(" · ");

  // Cards.
  const counts = s.tasks.counts || [];
  const count = (name) => (counts.length ? (counts.find(([k]) => k === name) || [name, 0])[1] : null);
  const depth = s.queues.reduce((a, q) => a + q.depth, 0);
  $("count-nodes").textContent = fmt(s.nodes.length);
  $("count-free").textContent = fmt(s.nodes.reduce((a, n) => a + n.free, 0)) + " / " + fmt(s.nodes.reduce((a, n) => a + n.capacity, 0));
  $("count-queued").textContent = fmt(depth);
  $("count-running").textContent = fmt(count("running"));
  const last = s.throughput.length ? s.throughput[s.throughput.length - 1] : null;
  $("count-rate").textContent = last && last.done_per_s != null ? last.done_per_s.toFixed(1) : "–";
  $("count-dlq").textContent = fmt(s.dlq.total);

  // Nodes.
  rows($("nodes").tBodies[0], s.nodes, 8, (n) => `<tr data-node="${esc(n.name)}">
      <td><b>${esc(n.name)}</b> <span class="muted mono">${esc(n.id)}</span></td>
      <td><span class="dot ${esc(n.health)}"></span>${esc(n.health)}</td>
      <td>${bar(n.load, n.load >= 0.9)} <span class="muted">${Math.round(n.load * 100)}%</span></td>
      <td>${fmt(n.free)} / ${fmt(n.capacity)}</td>
      <td class="mono">${esc(n.host)} · ${esc(n.pid)}</td>
      <td class="hb"></td>
      <td class="wrap mono">${n.types.map(esc).join(", ")}</td>
      <td class="act">${actions && !n.draining ? actionButton("drain", n.id, "Drain", "danger") : ""}</td>
    </tr>`, "no live nodes in this namespace", (tr, n) => (tr.querySelector(".hb").textContent = ago(n.last_heartbeat_ms)));

  // Pools (when the cluster reports them).
  const pools = s.pools || [];
  $("pools-section").hidden = !s.pools;
  rows($("pools").tBodies[0], pools, 7, (p) => {
    const placed = p.instances.reduce((a, [, n]) => a + n, 0);
    return `<tr data-pool="${esc(p.name)}">
      <td><b>${esc(p.name)}</b>${p.name !== p.id ? ` <span class="muted mono">${esc(p.id)}</span>` : ""}</td>
      <td class="mono">${esc(p.worker_type)}</td>
      <td class="placed">${fmt(placed)} / ${fmt(p.workers)}</td>
      <td>${p.instances.map(([node, n]) => `${esc(node)}: ${fmt(n)}`).join(", ") || '<span class="muted">owner did not answer</span>'}</td>
      <td class="inflight">${fmt(p.in_flight)}</td><td>${fmt(p.dispatched)}</td>
      <td class="mono">${esc(p.owner)}</td></tr>`;
  }, "no Mode::Cluster pools in this namespace");

  // Queues.
  rows($("queues").tBodies[0], s.queues, 7, (q) => `<tr data-queue="${esc(q.name)}">
      <td><b>${esc(q.name)}</b></td><td class="depth">${fmt(q.depth)}</td>
      ${LEVELS.map((_, i) => `<td>${q.by_priority ? fmt(q.by_priority[i]) : "–"}</td>`).join("")}
      <td>${fmt(q.dead_lettered)}</td></tr>`, "no task queue");
  chart($("chart"), s.throughput);

  // Tasks.
  const listed = s.tasks.listed_ms ? ` (as of ${new Date(s.tasks.listed_ms).toLocaleTimeString()})` : "";
  $("tasks-total").textContent = s.tasks.total ? `${fmt(s.tasks.total)} in all, newest ${fmt(s.tasks.recent.length)} listed${listed}` : "";
  put($("task-counts"), (s.tasks.counts || [])
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `<span class="chip" data-status="${esc(k)}">${esc(k.replace("_", " "))} <b>${fmt(n)}</b></span>`)
    .join(""));
  rows($("tasks").tBodies[0], s.tasks.recent, 8, (t) => `<tr data-task="${esc(t.id)}">
      <td class="mono">${esc(t.id)}</td><td class="mono">${esc(t.task)}</td>
      <td><span class="status ${esc(t.status)}">${esc(t.status.replace("_", " "))}</span></td>
      <td>${esc(t.node || "")}</td><td>${t.attempt || ""}</td><td class="dur"></td>
      <td class="wrap">${esc(t.error || "")}</td>
      <td class="act">${actions && !t.finished ? actionButton("cancel", t.id, "Cancel", "danger") : ""}</td>
    </tr>`, "no tasks to list", (tr, t) => (tr.querySelector(".dur").textContent = duration(t.duration_ms)));

  // Dead letters.
  $("dlq-total").textContent = s.dlq.total ? `${fmt(s.dlq.total)} in all, newest ${fmt(s.dlq.recent.length)} listed` : "";
  rows($("dlq").tBodies[0], s.dlq.recent, 8, (d) => `<tr data-dead="${esc(d.id)}">
      <td class="mono">${esc(d.id)}</td><td class="mono">${esc(d.task)}</td><td class="wrap">${esc(d.reason)}</td>
      <td>${d.attempts}</td><td class="wrap">${esc(d.last_error)}</td><td>${esc(d.node)}</td>
      <td>${new Date(d.at_ms).toLocaleTimeString()}</td>
      <td class="act">${actions ? actionButton("replay", d.id, "Replay") : ""}</td></tr>`, "no dead letters");

  // Limits (when the cluster reports them).
  const limits = s.limits || [];
  $("limits-section").hidden = !s.limits;
  put($("limits"), limits.length
    ? limits.map((l) => `<div class="limit" data-limit="${esc(l.pool)}/${esc(l.key)}"><span><b>${esc(l.pool)}</b> <span class="mono">${esc(l.key)}</span> <span class="muted small">${esc(l.kind)}</span></span>${bar(l.capacity > 0 ? l.used / l.capacity : 0, l.capacity > 0 && l.used >= l.capacity)}<span class="usage">${fmt(l.used)} / ${fmt(l.capacity)}${l.waiters ? ` · ${fmt(l.waiters)} waiting` : ""}</span></div>`).join("")
    : `<span class="muted">no pool in this namespace has limits</span>`);
}

// The chart: depth (left axis) and finished per second (right axis) over the last points.
function chart(canvas, points) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || canvas.width, h = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(w * dpr)) { canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr); }
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const pad = { l: 44, r: 44, t: 8, b: 20 };
  const css = getComputedStyle(document.documentElement);
  g.strokeStyle = css.getPropertyValue("--line"); g.fillStyle = css.getPropertyValue("--muted");
  g.font = "11px system-ui, sans-serif"; g.lineWidth = 1;
  g.strokeRect(pad.l, pad.t, w - pad.l - pad.r, h - pad.t - pad.b);
  if (points.length < 2) { g.fillText("collecting…", pad.l + 8, pad.t + 16); return; }
  const t1 = points[points.length - 1].at_ms, t0 = Math.min(points[0].at_ms, t1 - 60000);
  const x = (t) => pad.l + ((t - t0) / (t1 - t0)) * (w - pad.l - pad.r);
  const top = (vals) => { const m = Math.max(1, ...vals); const p = Math.pow(10, Math.floor(Math.log10(m))); return Math.ceil(m / p) * p; };
  const dMax = top(points.map((p) => p.depth));
  const rates = points.map((p) => p.done_per_s).filter((v) => v != null);
  const rMax = top(rates);
  const y = (v, max) => h - pad.b - (v / max) * (h - pad.t - pad.b);
  g.textAlign = "right"; g.fillText(fmt(dMax), pad.l - 4, pad.t + 10); g.fillText("0", pad.l - 4, h - pad.b);
  g.textAlign = "left"; if (rates.length) { g.fillText(rMax.toFixed(rMax < 10 ? 1 : 0), w - pad.r + 4, pad.t + 10); g.fillText("0", w - pad.r + 4, h - pad.b); }
  g.textAlign = "center"; g.fillText(Math.round((t1 - t0) / 60000) + " min ago", pad.l + 30, h - 5); g.fillText("now", w - pad.r - 12, h - 5);
  const line = (color, pick, max) => {
    // A gap in the points (the dashboard could not read the cluster) stays a gap.
    g.strokeStyle = color; g.lineWidth = 2; g.beginPath(); let on = false, last = null;
    for (const p of points) {
      const v = pick(p);
      if (v == null || (last != null && p.at_ms - last > 5000)) on = false;
      last = p.at_ms;
      if (v == null) continue;
      const X = x(p.at_ms), Y = y(v, max); if (on) g.lineTo(X, Y); else g.moveTo(X, Y); on = true;
    }
    g.stroke();
  };
  line(css.getPropertyValue("--accent"), (p) => p.depth, dMax);
  if (rates.length) line(css.getPropertyValue("--accent2"), (p) => p.done_per_s, rMax);
}

// Renders at most once a frame, whatever the rate of events.
function schedule(s) {
  latest = s;
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => { pending = false; render(latest); });
}

let toastTimer = null;
function toast(msg, bad) {
  const t = $("toast"); t.textContent = msg; t.className = "toast" + (bad ? " bad" : ""); t.hidden = false;
  clearTimeout(toastTimer); toastTimer = setTimeout(() => (t.hidden = true), 4000);
}

const ENDPOINTS = {
  cancel: (id) => `/api/tasks/${encodeURIComponent(id)}/cancel`,
  replay: (id) => `/api/dlq/${encodeURIComponent(id)}/replay`,
  drain: (id) => `/api/nodes/${encodeURIComponent(id)}/drain`,
};

async function act(kind, id) {
  try {
    const r = await fetch(ENDPOINTS[kind](id), { method: "POST", headers: { "X-Concurry-Action": "1" } });
    const body = await r.json().catch(() => ({ ok: false, message: r.statusText }));
    toast(body.message, !body.ok);
  } catch (e) {
    toast("the dashboard did not answer: " + e, true);
  }
}

document.addEventListener("click", (e) => {
  const b = e.target.closest("button[data-action]");
  if (!b) return;
  if (b.dataset.action === "drain" && !confirm(`Drain node ${b.dataset.id}? It takes no new work, its instances move to other nodes, and it leaves the cluster.`)) return;
  b.disabled = true;
  act(b.dataset.action, b.dataset.id).finally(() => (b.disabled = false));
});
$("cancel-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const id = $("cancel-id").value.trim();
  if (id) act("cancel", id).then(() => ($("cancel-id").value = ""));
});

function connect() {
  const es = new EventSource("/events");
  es.addEventListener("snapshot", (e) => {
    $("live").textContent = "live"; $("live").className = "pill on";
    schedule(JSON.parse(e.data));
  });
  // EventSource reconnects by itself; say so meanwhile.
  es.onerror = () => { $("live").textContent = "reconnecting…"; $("live").className = "pill off"; };
}
connect();
