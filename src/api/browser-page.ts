import { PAGE_KIT, pageCsp } from "./page-kit.js";

/**
 * The message browser served at GET /messages: one self-contained HTML document that searches a
 * topic's stored messages through GET /api/topics/T/messages (nothing is consumed) and shows one
 * message with its state on each subscription through GET /api/topics/T/messages/SEQ.
 *
 * The search lives in the fragment (`/messages#topic=orders&trace_id=…`), so a tracing
 * dashboard can link straight to a trace's message; the fragment never reaches the server.
 *
 * Payloads, attributes, keys and names are user data: they go into the page through
 * textContent or setAttribute only (the `el` helper of PAGE_KIT), never through HTML parsing.
 * The script avoids backticks, dollar-braces and backslashes (one dollar-brace pastes PAGE_KIT),
 * sets no style attributes and loads nothing else, so it works under BROWSER_PAGE_CSP.
 */
export const BROWSER_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>NerveBus · messages</title>
<style>
  :root { --bg: #f4f6f9; --card: #fff; --ink: #1d2433; --muted: #6b7487; --line: #e3e7ee; --head: #17202f;
    --accent: #0f8b8d; --ok: #1a8f4c; --ok-bg: #e3f5ea; --warn: #a86200; --warn-bg: #fff2dc; --bad: #c0392b; --bad-bg: #fde8e6; }
  * { box-sizing: border-box; }
  body { margin: 0; background: var(--bg); color: var(--ink);
    font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "Liberation Sans", "DejaVu Sans", sans-serif; }
  header.top { background: var(--head); color: #fff; padding: 12px 24px; display: flex; align-items: baseline; gap: 20px; }
  header.top .brand { font-size: 18px; font-weight: 700; }
  header.top a { color: #a9b4c7; }
  main { padding: 16px 24px 32px; max-width: 1400px; }
  .card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; margin-bottom: 16px; overflow: hidden; }
  .search { display: grid; grid-template-columns: repeat(5, minmax(0, 1fr)); gap: 8px 12px; padding: 12px 14px; }
  .search label { display: flex; flex-direction: column; font-size: 11px; color: var(--muted); text-transform: uppercase; letter-spacing: .4px; }
  .search input { font: inherit; font-size: 13px; padding: 4px 6px; border: 1px solid #c9ced8; border-radius: 4px; text-transform: none; }
  .search .go { display: flex; align-items: flex-end; gap: 8px; }
  button { font: inherit; font-size: 12px; font-weight: 600; padding: 4px 14px; border-radius: 5px; cursor: pointer;
    border: 1px solid var(--accent); background: var(--accent); color: #fff; }
  button.plain { background: #fff; color: var(--ink); border-color: #c9ced8; }
  .info { padding: 8px 14px; color: var(--muted); border-top: 1px solid var(--line); display: flex; gap: 12px; align-items: center; }
  .error { background: var(--bad-bg); color: var(--bad); padding: 8px 14px; font-weight: 600; }
  .signin { display: flex; gap: 8px; align-items: center; background: var(--warn-bg); color: var(--warn); padding: 8px 24px; }
  .signin[hidden], .error[hidden], #detail[hidden] { display: none; }
  table { width: 100%; border-collapse: collapse; }
  th { text-align: left; font-size: 11px; font-weight: 600; color: var(--muted); text-transform: uppercase; letter-spacing: .4px;
    padding: 7px 10px; border-bottom: 1px solid var(--line); background: #fafbfc; }
  td { padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
  tr.msg { cursor: pointer; }
  tr.msg:hover > td, tr.msg.sel > td { background: #eef7f7; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
  td.mono, pre, .mono { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; }
  td.payload { max-width: 200px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  td.time { white-space: nowrap; }
  td.text { max-width: 180px; overflow-wrap: anywhere; }
  td.mono.trace { font-size: 11px; }
  #results { overflow-x: auto; }
  pre { margin: 0; padding: 10px 14px; white-space: pre-wrap; word-break: break-all; background: #fafbfc; max-height: 420px; overflow: auto; }
  .badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; margin: 1px 4px 1px 0;
    background: #eef0f4; color: var(--muted); white-space: nowrap; }
  .badge.acked { background: var(--ok-bg); color: var(--ok); }
  .badge.leased, .badge.held { background: #e6f0ff; color: #2456a6; }
  .badge.waiting_redelivery { background: var(--warn-bg); color: var(--warn); }
  .badge.dead_lettering, .badge.dead_lettered { background: var(--bad-bg); color: var(--bad); }
  dl.fields { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; padding: 12px 14px; }
  dl.fields dt { color: var(--muted); }
  dl.fields dd { margin: 0; word-break: break-all; }
  h3 { margin: 0; padding: 10px 14px; font-size: 14px; border-bottom: 1px solid var(--line); }
  .empty { color: var(--muted); padding: 14px; }
</style>
</head>
<body>
<header class="top"><span class="brand">NerveBus · messages</span><a href="/">status page</a>
  <span>Browsing reads stored messages; it consumes nothing.</span></header>
<div class="signin" id="signin" hidden>
  <label for="token">This broker wants a bearer token (or a client certificate):</label>
  <input id="token" type="password" autocomplete="off" spellcheck="false">
  <button type="button" id="use-token">Use token</button>
</div>
<main>
  <div class="card">
    <div class="search" id="search">
      <label>Topic<input id="f-topic" spellcheck="false"></label>
      <label>From seq<input id="f-from_seq" inputmode="numeric"></label>
      <label>To seq<input id="f-to_seq" inputmode="numeric"></label>
      <label>Since (ISO time)<input id="f-since" placeholder="2026-12-06T10:00:00Z"></label>
      <label>Until (ISO time)<input id="f-until"></label>
      <label>Ordering key<input id="f-ordering_key" spellcheck="false"></label>
      <label>Message id<input id="f-message_id" spellcheck="false"></label>
      <label>Trace id<input id="f-trace_id" spellcheck="false"></label>
      <label>Attribute (key=value)<input id="f-attr" spellcheck="false"></label>
      <div class="go"><button type="button" id="go">Search</button><button type="button" class="plain" id="clear">Clear</button></div>
    </div>
    <div class="error" id="error" role="alert" hidden></div>
  </div>
  <div class="card" id="results"><div class="empty">Give a topic (and any filters) and press Search.</div></div>
  <div class="card" id="detail" hidden></div>
</main>
<script>
"use strict";
${PAGE_KIT}
const FIELDS = ["topic", "from_seq", "to_seq", "since", "until", "ordering_key", "message_id", "trace_id", "attr"];
const STATE_TEXT = { not_delivered: "not delivered", leased: "leased", waiting_redelivery: "waiting for redelivery",
  acked: "acked", held: "held by its ordering key", dead_lettering: "being dead-lettered",
  dead_lettered: "dead-lettered" };

function iso(ms) { return ms ? new Date(ms).toISOString() : ""; }

function formParams() {
  const p = new URLSearchParams();
  for (const f of FIELDS) {
    const v = byId("f-" + f).value.trim();
    if (v) p.set(f, v);
  }
  return p;
}

function showError(message) {
  const e = byId("error");
  e.textContent = message || "";
  e.hidden = !message;
}

async function getJson(url) {
  const res = await fetch(url, { cache: "no-store", headers: authHeaders() });
  byId("signin").hidden = res.status !== 401;
  let body = null;
  try { body = await res.json(); } catch (_) { /* not JSON */ }
  if (!res.ok) throw new Error((body && body.error) || "HTTP " + res.status);
  return body;
}

function topicUrl(topic) { return "/api/topics/" + encodeURIComponent(topic) + "/messages"; }

function stateBadge(d, named) {
  let text = (named ? d.subscription + ": " : "") + (STATE_TEXT[d.state] || d.state);
  if (d.attempts > 0) text += " (" + d.attempts + ")";
  if (d.state === "dead_lettered") text += d.deadLetterTopic ? " to " + d.deadLetterTopic : " (dropped)";
  return el("span", { class: "badge " + d.state, "data-sub": d.subscription, "data-state": d.state }, text);
}

/** The attributes but the trace context (its trace id has a column of its own). */
function attributesText(a) {
  return Object.keys(a).filter((k) => k !== "traceparent" && k !== "tracestate").sort()
    .map((k) => k + "=" + a[k]).join(", ");
}

async function search(fromSeq) {
  const p = formParams();
  const topic = p.get("topic");
  if (!topic) { showError("Give a topic."); return; }
  history.replaceState(null, "", "#" + p.toString());
  p.delete("topic");
  const attr = p.get("attr");
  if (fromSeq) p.set("from_seq", String(fromSeq));
  p.set("deliveries", "1");
  try {
    const data = await getJson(topicUrl(topic) + "?" + p.toString());
    showError(null);
    renderResults(data, attr);
  } catch (err) {
    showError("Search failed: " + String((err && err.message) || err));
  }
}

function renderResults(data, attr) {
  const box = byId("results");
  const info = el("div", { class: "info", id: "page-info" },
    data.messages.length + (data.messages.length === 1 ? " message" : " messages") + " of " + data.topic
      + " · examined through seq " + fmtInt(data.scannedThrough) + (attr ? " · attribute " + attr : ""));
  if (data.nextSeq > 0) {
    const more = el("button", { type: "button", class: "plain", id: "next" }, "Next page (from seq " + fmtInt(data.nextSeq) + ")");
    more.addEventListener("click", () => search(data.nextSeq));
    info.append(more);
  }
  if (data.messages.length === 0) {
    box.replaceChildren(el("div", { class: "empty" }, "No stored message matches."), info);
    return;
  }
  const head = el("tr", null, el("th", null, "Seq"), el("th", null, "Published"), el("th", null, "Ordering key"),
    el("th", null, "Message id"), el("th", null, "Trace id"), el("th", null, "Attributes"), el("th", null, "Payload"),
    el("th", null, "Subscriptions"));
  const body = el("tbody");
  for (const m of data.messages) {
    const row = el("tr", { class: "msg", "data-seq": m.seq, title: "Show seq " + m.seq },
      el("td", { class: "num" }, fmtInt(m.seq)),
      el("td", { class: "mono time" }, iso(m.publishTime)),
      el("td", { class: "text" }, m.orderingKey),
      el("td", { class: "text" }, m.messageId),
      el("td", { class: "mono trace" }, m.traceId),
      el("td", { class: "text" }, attributesText(m.attributes)),
      el("td", { class: "payload mono", "data-field": "payload" }, m.dataText.slice(0, 200)),
      el("td", null, ...(m.deliveries || []).map((d) => stateBadge(d, true))));
    row.addEventListener("click", () => show(data.topic, m.seq, row));
    body.append(row);
  }
  box.replaceChildren(el("table", null, el("thead", null, head), body), info);
}

async function show(topic, seq, row) {
  for (const r of document.querySelectorAll("tr.msg.sel")) r.classList.remove("sel");
  if (row) row.classList.add("sel");
  const box = byId("detail");
  try {
    const data = await getJson(topicUrl(topic) + "/" + seq);
    const m = data.message;
    const fields = el("dl", { class: "fields" });
    const add = (k, v, cls) => fields.append(el("dt", null, k), el("dd", { class: cls }, v));
    add("Published", iso(m.publishTime), "mono");
    add("Trace id", m.traceId, "mono");
    add("Ordering key", m.orderingKey);
    add("Message id", m.messageId);
    for (const k of Object.keys(m.attributes).sort()) add("Attribute " + k, m.attributes[k]);
    add("Payload", fmtInt(m.dataBytes) + " bytes" + (m.dataTruncated ? ", the first 64 KiB shown as text" : ", shown as text"));
    const subs = el("tbody");
    for (const d of m.deliveries) {
      subs.append(el("tr", { "data-sub": d.subscription },
        el("td", null, d.subscription), el("td", null, stateBadge(d, false)), el("td", { class: "num" }, fmtInt(d.attempts)),
        el("td", null, d.consumer), el("td", { class: "mono" }, iso(d.leaseDeadline)), el("td", { class: "mono" }, iso(d.notBefore))));
    }
    const deliveries = m.deliveries.length === 0 ? el("div", { class: "empty" }, "No subscriptions.")
      : el("table", null, el("thead", null, el("tr", null, el("th", null, "Subscription"), el("th", null, "State"),
        el("th", null, "Attempts"), el("th", null, "Consumer"), el("th", null, "Lease until"), el("th", null, "Next attempt"))), subs);
    box.replaceChildren(el("h3", null, "Seq " + fmtInt(m.seq) + " of " + data.topic), fields,
      el("pre", { id: "payload" }, m.dataText), el("h3", null, "Deliveries and acks"), deliveries);
    box.hidden = false;
  } catch (err) {
    showError("Could not load seq " + seq + ": " + String((err && err.message) || err));
  }
}

function fromHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  for (const f of FIELDS) byId("f-" + f).value = p.get(f) || "";
  if (p.get("topic")) search(0);
}

byId("go").addEventListener("click", () => search(0));
byId("clear").addEventListener("click", () => { location.hash = ""; fromHash(); });
byId("search").addEventListener("keydown", (ev) => { if (ev.key === "Enter") search(0); });
byId("use-token").addEventListener("click", () => useToken(() => search(0)));
byId("token").addEventListener("keydown", (ev) => { if (ev.key === "Enter") useToken(() => search(0)); });
window.addEventListener("hashchange", fromHash);
fromHash();
</script>
</body>
</html>
`;

/** The browser's Content-Security-Policy (see pageCsp). */
export const BROWSER_PAGE_CSP = pageCsp(BROWSER_PAGE);
