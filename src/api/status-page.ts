import { PAGE_KIT, pageCsp } from "./page-kit.js";
import { REQUEST_HEADER } from "./request-guard.js";

/**
 * The status page served at GET /: one self-contained HTML document (inline CSS and script, no
 * external resources) that polls GET /api/status every 2 s, keeps a short history of the rates it
 * has seen for sparklines, and pauses/resumes subscriptions through
 * POST /api/topics/T/subscriptions/S/pause|resume.
 *
 * Every name shown (topics, subscriptions, consumers: all user input) goes into the page through
 * textContent or setAttribute, never through HTML parsing, so it cannot inject markup.
 *
 * The script inside avoids backticks, dollar-brace and backslashes so that this template literal
 * passes it through unchanged (its dollar-braces, the helpers it shares with the message
 * browser and the request header's name, are filled in here). It sets no style attributes and
 * loads no other script, so the page works under STATUS_PAGE_CSP.
 *
 * Kept as one file over 500 lines: it is one HTML document, and the CSP hashes computed below
 * must come from exactly the script and style it serves.
 */
export const STATUS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>NerveBus</title>
<style>
  :root {
    --bg: #f4f6f9; --card: #ffffff; --ink: #1d2433; --muted: #6b7487; --line: #e3e7ee;
    --head: #17202f; --accent: #0f8b8d; --ok: #1a8f4c; --ok-bg: #e3f5ea; --warn: #a86200;
    --warn-bg: #fff2dc; --bad: #c0392b; --bad-bg: #fde8e6; --spark: #0f8b8d; --spark2: #6c5ce7;
  }
  * { box-sizing: border-box; }
  body { margin: 0; background: var(--bg); color: var(--ink);
    font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "Liberation Sans", "DejaVu Sans", sans-serif; }
  header.top { background: var(--head); color: #fff; padding: 12px 24px; display: flex; align-items: center;
    gap: 28px; flex-wrap: wrap; }
  .brand { font-size: 18px; font-weight: 700; letter-spacing: .3px; white-space: nowrap; }
  .brand .addr { font-weight: 400; color: #a9b4c7; margin-left: 8px; font-size: 14px; }
  .stats { display: flex; gap: 24px; flex-wrap: wrap; margin: 0; }
  .stat { display: flex; flex-direction: column; min-width: 64px; }
  .stat dt { font-size: 11px; text-transform: uppercase; letter-spacing: .6px; color: #8d99ae; }
  .stat dd { margin: 0; font-size: 15px; font-weight: 600; font-variant-numeric: tabular-nums; white-space: nowrap; }
  .updated { margin-left: auto; color: #8d99ae; font-size: 12px; white-space: nowrap; }
  .badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; }
  .badge.ok { background: var(--ok-bg); color: var(--ok); }
  .badge.bad { background: var(--bad-bg); color: var(--bad); }
  .badge.warn { background: var(--warn-bg); color: var(--warn); }
  .badge.info { background: #e6f0ff; color: #2456a6; }
  .banner { background: var(--bad); color: #fff; padding: 10px 24px; font-weight: 600; }
  .notice { background: var(--warn-bg); color: var(--warn); padding: 8px 24px; border-bottom: 1px solid #f0d9b5; }
  .signin { display: flex; gap: 8px; align-items: center; background: var(--warn-bg); color: var(--warn);
    padding: 8px 24px; border-bottom: 1px solid #f0d9b5; }
  .signin[hidden] { display: none; }
  .signin input { font: inherit; padding: 2px 6px; width: 28em; }
  main { padding: 16px 24px 32px; max-width: 1400px; }
  main.stale { opacity: .55; }
  h2 { font-size: 15px; margin: 8px 0 10px; }
  .card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; margin-bottom: 16px;
    overflow: hidden; }
  .card-head { display: flex; align-items: baseline; gap: 12px; padding: 10px 14px; border-bottom: 1px solid var(--line); }
  .card-head h3 { margin: 0; font-size: 14px; }
  .card-head .meta { color: var(--muted); font-size: 12px; }
  table { width: 100%; border-collapse: collapse; }
  table.subs { table-layout: fixed; }
  th { text-align: right; font-size: 11px; font-weight: 600; color: var(--muted); text-transform: uppercase;
    letter-spacing: .4px; padding: 7px 10px; border-bottom: 1px solid var(--line); background: #fafbfc; }
  td { text-align: right; padding: 6px 10px; border-bottom: 1px solid var(--line); font-variant-numeric: tabular-nums;
    white-space: nowrap; vertical-align: middle; }
  th.l, td.l { text-align: left; }
  tr:last-child > td { border-bottom: 0; }
  td.name { font-weight: 600; max-width: 300px; overflow: hidden; text-overflow: ellipsis; }
  td.name a { color: var(--ink); text-decoration: none; }
  td.name a:hover { color: var(--accent); text-decoration: underline; }
  .zero { color: #a7afbd; }
  .hot { color: var(--warn); font-weight: 600; }
  .err { color: var(--bad); font-weight: 600; }
  .rate { display: inline-flex; align-items: center; gap: 6px; justify-content: flex-end; }
  .rate .v { min-width: 44px; }
  svg.spark { display: block; }
  svg.spark .line { fill: none; stroke: var(--spark); stroke-width: 1.5; }
  svg.spark .area { fill: var(--spark); opacity: .12; stroke: none; }
  svg.spark.ack .line { stroke: var(--spark2); }
  svg.spark.ack .area { fill: var(--spark2); }
  svg.spark .base { stroke: var(--line); stroke-width: 1; }
  tr.paused > td { background: #fffaf0; }
  tr.consumers > td { background: #fbfcfd; text-align: left; white-space: normal; padding: 4px 10px 8px 26px; }
  tr.paused + tr.consumers > td { background: #fffaf0; }
  .chip { display: inline-block; border: 1px solid var(--line); background: #fff; border-radius: 12px;
    padding: 1px 9px; margin: 2px 6px 2px 0; font-size: 12px; color: var(--muted); white-space: nowrap; }
  .chip b { color: var(--ink); font-weight: 600; }
  button.act { font: inherit; font-size: 12px; font-weight: 600; padding: 3px 12px; border-radius: 5px; cursor: pointer;
    border: 1px solid #c9ced8; background: #fff; color: var(--ink); min-width: 72px; }
  button.act:hover { border-color: var(--accent); color: var(--accent); }
  button.act.resume { background: var(--accent); border-color: var(--accent); color: #fff; }
  button.act.resume:hover { background: #0c7275; color: #fff; }
  button.act:disabled { opacity: .5; cursor: progress; }
  .empty { color: var(--muted); padding: 14px; }
  .muted { color: var(--muted); }
  footer { color: var(--muted); font-size: 12px; padding: 0 24px 24px; }
</style>
</head>
<body>
<header class="top">
  <div class="brand">NerveBus<span class="addr" id="addr"></span></div>
  <dl class="stats">
    <div class="stat"><dt>Health</dt><dd id="health"><span class="badge warn">connecting</span></dd></div>
    <div class="stat"><dt>Store</dt><dd id="store">–</dd></div>
    <div class="stat"><dt>Cluster</dt><dd id="cluster">–</dd></div>
    <div class="stat"><dt>Uptime</dt><dd id="uptime">–</dd></div>
    <div class="stat"><dt>Open streams</dt><dd id="streams">–</dd></div>
    <div class="stat"><dt>Write buffer</dt><dd id="buffer">–</dd></div>
    <div class="stat"><dt>Topics</dt><dd id="ntopics">–</dd></div>
    <div class="stat"><dt>Subscriptions</dt><dd id="nsubs">–</dd></div>
  </dl>
  <div class="updated" id="updated">loading…</div>
</header>
<div class="banner" id="banner" role="alert" hidden></div>
<div class="notice" id="notice" role="status" hidden></div>
<div class="signin" id="signin" hidden>
  <label for="token">This broker wants a bearer token (or a client certificate):</label>
  <input id="token" type="password" autocomplete="off" spellcheck="false">
  <button type="button" id="use-token">Use token</button>
</div>
<main id="main">
  <section>
    <h2>Topics</h2>
    <div class="card" id="topics"><div class="empty">Loading…</div></div>
  </section>
  <section id="subs"></section>
</main>
<footer>Refreshes every 2 s from <a href="/api/status">/api/status</a> · <a href="/metrics">/metrics</a> (Prometheus) · rate charts show the last minute seen by this page.</footer>
<script>
"use strict";
const POLL_MS = 2000;
const TIMEOUT_MS = 5000;
const HISTORY = 30;
const SUB_COLUMNS = [12, 7, 7, 6, 8, 8, 7, 12, 12, 7, 6, 8];
const SVG_NS = "http://www.w3.org/2000/svg";

const rates = new Map();
const busy = new Set();
let last = null;
let lastOkAt = 0;
let timer = 0;
let polling = false;
let again = false;
let noticeTimer = 0;
${PAGE_KIT}

function fmtRate(r) {
  if (!r) return "0/s";
  if (r < 10) return r.toFixed(1) + "/s";
  if (r < 10000) return Math.round(r).toLocaleString("en-US") + "/s";
  return (r / 1000).toFixed(1) + "k/s";
}
function fmtBytes(b) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = Number(b);
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? String(v) : v.toFixed(1)) + " " + units[i];
}
function fmtDur(ms) {
  ms = Math.max(0, Number(ms) || 0);
  if (ms < 1000) return Math.round(ms) + " ms";
  const s = ms / 1000;
  if (s < 60) return s.toFixed(1) + " s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + "m " + Math.floor(s % 60) + "s";
  const h = Math.floor(m / 60);
  if (h < 24) return h + "h " + (m % 60) + "m";
  return Math.floor(h / 24) + "d " + (h % 24) + "h";
}
function fmtClock(t) { return new Date(t).toLocaleTimeString("en-GB"); }

/** A number cell: muted when zero, with an optional class when it deserves attention. */
function num(field, n, attention) {
  const cls = n === 0 ? "zero" : attention || "";
  return el("td", { "data-field": field, class: cls || undefined }, fmtInt(n));
}

function remember(key, value) {
  let h = rates.get(key);
  if (!h) { h = []; rates.set(key, h); }
  h.push(Number(value) || 0);
  if (h.length > HISTORY) h.splice(0, h.length - HISTORY);
}

/** Appends this poll's rates to each series; forgets series whose topic or subscription is gone. */
function record(data) {
  const seen = new Set();
  for (const t of data.topics) {
    const tk = JSON.stringify(["t", t.name]);
    remember(tk, t.publishRate);
    seen.add(tk);
    for (const s of t.subscriptions) {
      for (const [kind, v] of [["d", s.deliveryRate], ["a", s.ackRate]]) {
        const k = JSON.stringify([kind, t.name, s.name]);
        remember(k, v);
        seen.add(k);
      }
    }
  }
  for (const k of [...rates.keys()]) if (!seen.has(k)) rates.delete(k);
}

/** A small SVG line chart of a rate series, newest sample at the right edge. */
function spark(key, cls) {
  const values = rates.get(key) || [];
  const w = 64;
  const h = 22;
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("class", "spark " + cls);
  svg.setAttribute("width", String(w));
  svg.setAttribute("height", String(h));
  svg.setAttribute("viewBox", "0 0 " + w + " " + h);
  const max = Math.max(0, ...values);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "last " + values.length + " samples, peak " + fmtRate(max));
  const title = document.createElementNS(SVG_NS, "title");
  title.textContent = "Last " + Math.round((values.length * POLL_MS) / 1000) + " s, peak " + fmtRate(max);
  svg.append(title);
  const base = document.createElementNS(SVG_NS, "line");
  base.setAttribute("class", "base");
  base.setAttribute("x1", "0"); base.setAttribute("x2", String(w));
  base.setAttribute("y1", String(h - 0.5)); base.setAttribute("y2", String(h - 0.5));
  svg.append(base);
  if (values.length === 0) return svg;
  const step = w / (HISTORY - 1);
  const pts = values.map((v, i) => {
    const x = w - (values.length - 1 - i) * step;
    const y = h - 1 - (max > 0 ? (v / max) * (h - 4) : 0);
    return [x, y];
  });
  if (pts.length === 1) pts.unshift([pts[0][0] - step, pts[0][1]]);
  const line = pts.map((p) => p[0].toFixed(1) + "," + p[1].toFixed(1)).join(" ");
  const area = document.createElementNS(SVG_NS, "polygon");
  area.setAttribute("class", "area");
  area.setAttribute("points", pts[0][0].toFixed(1) + "," + h + " " + line + " " + pts[pts.length - 1][0].toFixed(1) + "," + h);
  const poly = document.createElementNS(SVG_NS, "polyline");
  poly.setAttribute("class", "line");
  poly.setAttribute("points", line);
  svg.append(area, poly);
  return svg;
}

function rateCell(field, value, key, cls) {
  return el("td", { "data-field": field }, el("span", { class: "rate" }, el("span", { class: "v" }, fmtRate(value)), spark(key, cls)));
}

function leaseText(own) {
  return "owner epoch " + own.epoch + (own.valid ? ", lease renewed " + fmtInt(own.ageMs) + " ms ago" : ", LEASE NOT VALID");
}

/** Several databases: each one's lease, since one out of reach fails only its own topics. */
function storeLine(b) {
  const own = b.ownership;
  if (!own || own.mechanism !== "lease") return b.store;
  const dbs = own.databases;
  if (!dbs) return b.store + " · " + leaseText(own);
  return b.store + " · owner of " + dbs.filter((d) => d.valid).length + " of " + dbs.length + " databases · "
    + dbs.map((d) => d.key + ": " + (d.owner === "" ? "NOT OPEN" : leaseText(d)) + (d.valid || !d.lost ? "" : " (" + d.lost + ")")).join(" · ");
}

function renderHeader(data) {
  const b = data.broker;
  byId("addr").textContent = b.address;
  document.title = "NerveBus · " + b.address;
  const health = byId("health");
  // A full disk refuses publishes only (reads and deliveries go on): a warning, not "unhealthy".
  const full = (b.storeSpace || []).filter((p) => p.full);
  // A read-only server (a failover): writes wait and are retried until it or its successor takes them.
  // role "outbox": an outbox relay's (the application's database); its rounds wait the same way.
  const readOnly = (b.storeReadOnly || []).filter((s) => s.readOnly);
  const storeReadOnly = readOnly.some((s) => s.role !== "outbox");
  health.replaceChildren(!b.healthy ? el("span", { class: "badge bad" }, "unhealthy")
    : full.length > 0 ? el("span", { class: "badge warn" }, "disk full: publishes refused")
    : storeReadOnly ? el("span", { class: "badge warn" }, "store read-only: writes retried")
    : readOnly.length > 0 ? el("span", { class: "badge warn" }, "outbox read-only: relay retried")
    : el("span", { class: "badge ok" }, "healthy"));
  byId("store").textContent = storeLine(b) + full.map((p) => " · OUT OF DISK SPACE since " + fmtClock(p.since) + ": " + p.place).join("")
    + readOnly.map((s) => " · READ-ONLY since " + fmtClock(s.since) + ": " + (s.role === "outbox" ? "outbox " : "") + s.server).join("");
  const cluster = b.cluster;
  byId("cluster").textContent = cluster
    ? cluster.members.filter((m) => m.live).length + " live brokers · "
      + cluster.members.map((m) => (m.id === cluster.self ? "this one" : m.address) + ": " + m.topics.length + " topics"
        + (m.draining ? " (draining)" : "") + (m.live ? "" : " (gone)")).join(" · ")
      + " · failovers " + fmtInt(cluster.failovers) + ", handovers " + fmtInt(cluster.handovers)
    : "one broker";
  byId("uptime").textContent = fmtDur(b.now - b.startedAt);
  byId("streams").textContent = fmtInt(b.openStreams);
  byId("buffer").textContent = fmtBytes(b.bufferedBytes);
  byId("ntopics").textContent = fmtInt(data.topicCount ?? data.topics.length);
  byId("nsubs").textContent = fmtInt(data.topics.reduce((n, t) => n + t.subscriptions.length, 0));
}

function topicAnchor(name) { return "topic-" + name; }

function renderTopics(data) {
  const box = byId("topics");
  if (data.topics.length === 0) {
    box.replaceChildren(el("div", { class: "empty" }, "No topics yet. Publish to a topic (or create one with the AdminService) and it shows up here."));
    return;
  }
  const head = el("tr", null,
    el("th", { class: "l" }, "Topic"), el("th", null, "Shards"), el("th", null, "First seq"), el("th", null, "Last seq"),
    el("th", null, "Publish rate"), el("th", null, "Scheduled"), el("th", null, "Dropped"), el("th", null, "Dedup ids"),
    el("th", null, "Retention"), el("th", null, "Subscriptions"), el("th", null, "Messages"));
  const body = el("tbody");
  for (const t of data.topics) {
    const link = el("a", { href: "#" + topicAnchor(t.name) }, t.name);
    const nameCell = el("td", { class: "l name", "data-field": "name", title: t.name }, link);
    // Ephemeral topics keep nothing, so their retention does not apply.
    const retention = t.ephemeral ? el("span", { class: "badge info" }, "ephemeral") : t.retentionMs > 0 ? fmtDur(t.retentionMs) : "forever";
    body.append(el("tr", { class: "topic", "data-topic": t.name },
      nameCell,
      el("td", { "data-field": "shards" }, fmtInt(t.shards)),
      el("td", { "data-field": "firstSeq" }, fmtInt(t.firstSeq)),
      el("td", { "data-field": "lastSeq" }, fmtInt(t.lastSeq)),
      rateCell("publishRate", t.publishRate, JSON.stringify(["t", t.name]), "pub"),
      num("scheduled", t.scheduled),
      num("dropped", t.dropped, "err"),
      num("dedupIds", t.dedupIds),
      el("td", { "data-field": "retention", title: fmtInt(t.retentionDeleted) + " messages deleted by retention" }, retention),
      el("td", { "data-field": "subscriptions" }, fmtInt(t.subscriptions.length)),
      el("td", { "data-field": "browse" }, el("a", { href: "/messages#topic=" + encodeURIComponent(t.name) }, "browse"))));
  }
  box.replaceChildren(el("table", null, el("thead", null, head), body));
}

function consumerChip(c, now) {
  const windowText = c.maxMessages === 0 ? "window closed"
    : "window " + fmtInt(c.maxMessages) + " msgs" + (c.maxBytes > 0 ? " / " + fmtBytes(c.maxBytes) : "");
  return el("span", { class: "chip", "data-consumer": c.name, title: "connected at " + new Date(c.connectedAt).toISOString() },
    el("b", null, c.name), " · " + fmtInt(c.inFlight) + " in flight · " + windowText + " · connected " + fmtDur(now - c.connectedAt) + " ago");
}

function renderSubscriptions(data) {
  const box = byId("subs");
  const cards = [];
  const now = data.broker.now;
  for (const t of data.topics) {
    const backlog = t.subscriptions.reduce((n, s) => n + s.backlog, 0);
    const card = el("div", { class: "card", id: topicAnchor(t.name), "data-topic": t.name },
      el("div", { class: "card-head" }, el("h3", null, t.name),
        el("span", { class: "meta" }, fmtInt(t.subscriptions.length) + (t.subscriptions.length === 1 ? " subscription" : " subscriptions")
          + " · backlog " + fmtInt(backlog) + " · publishing " + fmtRate(t.publishRate))));
    if (t.subscriptions.length === 0) {
      card.append(el("div", { class: "empty" }, "No subscriptions."));
      cards.push(card);
      continue;
    }
    const head = el("tr", null,
      el("th", { class: "l" }, "Subscription"), el("th", { class: "l" }, "State"), el("th", null, "Backlog"),
      el("th", null, "In flight"), el("th", null, "Waiting redelivery"), el("th", null, "Redelivered"),
      el("th", null, "Dead-lettered"), el("th", null, "Delivery rate"), el("th", null, "Ack rate"),
      el("th", null, "Oldest unacked"), el("th", null, "Consumers"), el("th", null, ""));
    const body = el("tbody");
    for (const s of t.subscriptions) {
      const key = JSON.stringify([t.name, s.name]);
      const action = s.paused ? "resume" : "pause";
      const button = el("button", {
        class: "act " + action, type: "button", "data-action": action, "data-topic": t.name, "data-sub": s.name,
        title: (s.paused ? "Resume deliveries of " : "Stop deliveries of ") + t.name + " / " + s.name,
      }, s.paused ? "Resume" : "Pause");
      if (busy.has(key)) button.disabled = true;
      const age = s.oldestUnackedAgeMs;
      const dead = el("td", { "data-field": "deadLettered", class: s.deadLettered > 0 ? "err" : "zero" }, fmtInt(s.deadLettered));
      if (s.dropped > 0) dead.append(el("div", { class: "muted" }, "+" + fmtInt(s.dropped) + " dropped"));
      body.append(el("tr", { class: "sub" + (s.paused ? " paused" : ""), "data-topic": t.name, "data-sub": s.name },
        el("td", { class: "l name", "data-field": "name", title: s.name }, s.name),
        el("td", { class: "l", "data-field": "state" },
          s.paused ? el("span", { class: "badge warn" }, "paused") : el("span", { class: "badge ok" }, "active")),
        num("backlog", s.backlog),
        num("inFlight", s.inFlight),
        num("waitingRedelivery", s.waitingRedelivery, "hot"),
        num("redelivered", s.redelivered),
        dead,
        rateCell("deliveryRate", s.deliveryRate, JSON.stringify(["d", t.name, s.name]), "del"),
        rateCell("ackRate", s.ackRate, JSON.stringify(["a", t.name, s.name]), "ack"),
        el("td", { "data-field": "oldestUnacked", class: age === 0 ? "zero" : age > 60000 ? "hot" : undefined }, age === 0 ? "–" : fmtDur(age)),
        el("td", { "data-field": "consumers", class: s.consumers.length === 0 ? "zero" : undefined }, s.consumers.length === 0 ? "none" : fmtInt(s.consumers.length)),
        el("td", null, button)));
      if (s.consumers.length > 0) {
        const row = el("td", { colspan: 12 });
        for (const c of s.consumers) row.append(consumerChip(c, now));
        body.append(el("tr", { class: "consumers", "data-topic": t.name, "data-sub": s.name }, row));
      }
    }
    // Widths through CSSOM: the Content-Security-Policy refuses style attributes.
    const cols = el("colgroup", null, ...SUB_COLUMNS.map((w) => { const c = el("col"); c.style.width = w + "%"; return c; }));
    card.append(el("table", { class: "subs" }, cols, el("thead", null, head), body));
    cards.push(card);
  }
  box.replaceChildren(...(cards.length > 0 ? [el("h2", null, "Subscriptions")] : []), ...cards);
}

function render() {
  if (!last) return;
  renderHeader(last);
  renderTopics(last);
  renderSubscriptions(last);
}

function showBanner(message) {
  const banner = byId("banner");
  if (message === null) {
    banner.hidden = true;
    banner.textContent = "";
    byId("main").classList.remove("stale");
    return;
  }
  let text = "Broker not answering (" + message + "). Retrying every " + POLL_MS / 1000 + " s.";
  if (lastOkAt) text += " Showing data from " + fmtClock(lastOkAt) + ".";
  banner.textContent = text;
  banner.hidden = false;
  byId("main").classList.add("stale");
  byId("health").replaceChildren(el("span", { class: "badge bad" }, "unreachable"));
  byId("updated").textContent = lastOkAt ? "last answer " + fmtClock(lastOkAt) : "no answer yet";
}

function showNotice(message) {
  const n = byId("notice");
  n.textContent = message;
  n.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { n.hidden = true; }, 8000);
}

async function poll() {
  if (polling) { again = true; return; }
  polling = true;
  clearTimeout(timer);
  const ctrl = new AbortController();
  const limit = setTimeout(() => ctrl.abort(), TIMEOUT_MS);
  try {
    const res = await fetch("/api/status", { cache: "no-store", signal: ctrl.signal, headers: authHeaders() });
    byId("signin").hidden = res.status !== 401;
    if (!res.ok) {
      let detail = "HTTP " + res.status;
      try { const b = await res.json(); if (b && b.error) detail += ": " + b.error; } catch (_) { /* not JSON */ }
      throw new Error(detail);
    }
    const data = await res.json();
    if (!data || !data.broker || !Array.isArray(data.topics)) throw new Error("unexpected answer from /api/status");
    record(data);
    last = data;
    lastOkAt = Date.now();
    showBanner(null);
    render();
    byId("updated").textContent = "updated " + fmtClock(lastOkAt);
  } catch (err) {
    const msg = err && err.name === "AbortError" ? "no answer within " + TIMEOUT_MS / 1000 + " s" : String((err && err.message) || err);
    showBanner(msg);
  } finally {
    clearTimeout(limit);
    polling = false;
    if (again) { again = false; poll(); }
    else timer = setTimeout(poll, POLL_MS);
  }
}

async function act(button) {
  const topic = button.getAttribute("data-topic");
  const sub = button.getAttribute("data-sub");
  const action = button.getAttribute("data-action");
  const key = JSON.stringify([topic, sub]);
  if (busy.has(key)) return;
  busy.add(key);
  button.disabled = true;
  try {
    const url = "/api/topics/" + encodeURIComponent(topic) + "/subscriptions/" + encodeURIComponent(sub) + "/" + action;
    // The header marks the request as the page's own (see the broker's same-origin rule).
    const res = await fetch(url, { method: "POST", cache: "no-store", headers: { ...authHeaders(), "${REQUEST_HEADER}": "1" } });
    let body = null;
    try { body = await res.json(); } catch (_) { /* not JSON */ }
    if (!res.ok) throw new Error((body && body.error) || "HTTP " + res.status);
    const paused = body && typeof body.paused === "boolean" ? body.paused : action === "pause";
    for (const t of last ? last.topics : []) {
      if (t.name !== topic) continue;
      for (const s of t.subscriptions) if (s.name === sub) s.paused = paused;
    }
  } catch (err) {
    showNotice("Could not " + action + " " + topic + " / " + sub + ": " + String((err && err.message) || err));
  } finally {
    busy.delete(key);
    render();
    poll();
  }
}

byId("use-token").addEventListener("click", () => useToken(poll));
byId("token").addEventListener("keydown", (ev) => { if (ev.key === "Enter") useToken(poll); });

document.addEventListener("click", (ev) => {
  const target = ev.target instanceof Element ? ev.target.closest("button[data-action]") : null;
  if (target) act(target);
});

poll();
</script>
</body>
</html>
`;

/** The page's Content-Security-Policy (see pageCsp). */
export const STATUS_PAGE_CSP = pageCsp(STATUS_PAGE);
