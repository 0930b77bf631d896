import type { Check, FigureSummary, Statistic } from "./check-types.js";
import { fmtInt, fmtMs } from "./lib/stats.js";
import { streamConfig } from "./report-features.js";
import type { DrainEntry, StoreKind, StoreResults, SuiteResults } from "./suite-results.js";

export type { Check, FigureSummary, Statistic };

/**
 * What one run of the suite says against issue 14's "Done when": every measured figure of each
 * run flattened to "store: what" → number, summarized over the runs (--repeat), and each target
 * a check on the mean of its figure. Ratios are taken within a run (against that run's own
 * ceilings), then averaged, so a slow minute shifts both sides of a ratio together.
 */

/** A comma-separated option of results.json as numbers (`fallback` for results without it). */
function list(option: string | boolean | undefined, fallback: string): number[] {
  return String(option ?? fallback)
    .split(",")
    .map(Number);
}

/** The shard count the issue's targets are stated for. */
const SHARDS = 4;
/** The end-to-end rates the issue states its latency target for. */
const E2E_RATES = [1000, 10_000];
const PROCESSES = ["broker", "db", "loadgen"] as const;

type Figures = Map<string, number>;

function addCpu(f: Figures, prefix: string, cpu: Record<string, number> | undefined, unit = "msg"): void {
  for (const [proc, v] of Object.entries(cpu ?? {}))
    if (Number.isFinite(v)) f.set(`${prefix}: ${proc} CPU µs/${unit}`, v);
}

function addRatio(f: Figures, key: string, a: number | undefined, b: number | undefined): void {
  if (a !== undefined && b !== undefined && b > 0) f.set(key, a / b);
}

/** Every figure of one store's run, keyed "what: unit" (without the store). */
export function figuresOf(st: StoreResults): Figures {
  const f: Figures = new Map();
  const cfg = (shards: number, bytes: number) => `${bytes} B ${shards} shards`;
  for (const r of st.raw) {
    const c = cfg(r.shards, r.bytes);
    f.set(`raw per-row INSERT ${c}: rows/s`, r.insertRowsPerSec);
    f.set(`raw per-row SELECT ${c}: rows/s`, r.selectRowsPerSec);
    addCpu(f, `raw per-row INSERT ${c}`, r.insertCpuMicrosPerRow, "row");
  }
  for (const r of st.rawRuns ?? []) {
    const c = cfg(r.shards, r.bytes);
    f.set(`raw run-row INSERT ${c}: msg/s`, r.insertMessagesPerSec);
    f.set(`raw run-row SELECT ${c}: msg/s`, r.selectMessagesPerSec);
    f.set(`raw run-row INSERT ${c}: messages per row`, r.runMessages);
    addCpu(f, `raw run-row INSERT ${c}`, r.insertCpuMicrosPerMessage);
    addCpu(f, `raw run-row SELECT ${c}`, r.selectCpuMicrosPerMessage);
  }
  for (const p of st.noStore ?? []) {
    const c = cfg(p.shards, p.bytes);
    f.set(`no-store ${c}: msg/s`, p.messagesPerSec);
    addCpu(f, `no-store ${c}`, p.cpuMicrosPerMessage);
  }
  for (const p of st.publish) {
    const c = cfg(p.shards, p.bytes);
    f.set(`publish ${c}: msg/s`, p.messagesPerSec);
    f.set(`publish ${c}: confirm p99 ms`, p.confirmLatencyMs.p99);
    if (p.messagesPerRun !== undefined) f.set(`publish ${c}: messages per stored run`, p.messagesPerRun);
    addCpu(f, `publish ${c}`, p.cpuMicrosPerMessage);
    const same = <T extends { shards: number; bytes: number }>(xs: readonly T[] | undefined) =>
      xs?.find((x) => x.shards === p.shards && x.bytes === p.bytes);
    addRatio(f, `publish ${c} / raw per-row INSERT`, p.messagesPerSec, same(st.raw)?.insertRowsPerSec);
    addRatio(f, `publish ${c} / no-store`, p.messagesPerSec, same(st.noStore)?.messagesPerSec);
    addRatio(
      f,
      `publish ${c} / raw run-row INSERT`,
      p.messagesPerSec,
      same(st.rawRuns)?.insertMessagesPerSec,
    );
  }
  for (const d of drainsOf(st)) {
    if (d.error !== undefined) continue;
    const c = cfg(d.shards, d.bytes);
    f.set(`drain ${c}: msg/s`, d.messagesPerSec);
    addCpu(f, `drain ${c}`, d.cpuMicrosPerMessage);
    const raw = st.raw.find((x) => x.shards === d.shards && x.bytes === d.bytes);
    const runs = st.rawRuns?.find((x) => x.shards === d.shards && x.bytes === d.bytes);
    addRatio(f, `drain ${c} / raw per-row SELECT`, d.messagesPerSec, raw?.selectRowsPerSec);
    addRatio(f, `drain ${c} / raw run-row SELECT`, d.messagesPerSec, runs?.selectMessagesPerSec);
  }
  for (const e of st.e2e) {
    const c = `e2e ${e.targetRate} msg/s`;
    f.set(`${c}: p50 ms`, e.latencyMs.p50);
    f.set(`${c}: p99 ms`, e.latencyMs.p99);
    f.set(`${c}: p999 ms`, e.latencyMs.p999);
    f.set(`${c}: undelivered`, e.undelivered);
    if (e.confirmedUndelivered !== undefined) f.set(`${c}: confirmed undelivered`, e.confirmedUndelivered);
    if (e.stalls !== undefined) {
      f.set(`${c}: event-loop delays > 25 ms`, e.stalls.loopOver25ms);
      f.set(`${c}: event-loop delays > 100 ms`, e.stalls.loopOver100ms);
      f.set(`${c}: store calls > 25 ms`, e.stalls.storeOver25ms);
      f.set(`${c}: store calls > 100 ms`, e.stalls.storeOver100ms);
      f.set(`${c}: loadgen event-loop delays > 25 ms`, e.stalls.loadgenOver25ms);
      if (e.stalls.ioFullStallMs !== undefined) f.set(`${c}: I/O full stall ms`, e.stalls.ioFullStallMs);
    }
    addCpu(f, c, e.cpuMicrosPerMessage);
  }
  addFeatureFigures(f, st);
  const o = st.overload;
  if (o !== undefined) {
    f.set("overload: max RSS MB", o.maxRssBytes / 1e6);
    f.set("overload: confirmed msg/s", o.messagesPerSec);
    f.set("overload: confirmed messages missing", o.verify.missing);
    addCpu(f, "overload", o.cpuMicrosPerMessage);
  }
  return f;
}

/** The figures of issue 16's phases: streaming publish, the outbox relay, priorities, the cluster. */
function addFeatureFigures(f: Figures, st: StoreResults): void {
  const base = st.stream?.find((r) => r.mode === "sendpack");
  for (const r of st.stream ?? []) {
    const c = streamConfig(r);
    f.set(`${c}: msg/s`, r.messagesPerSec);
    f.set(`${c}: confirm p99 ms`, r.confirmLatencyMs.p99);
    addCpu(f, c, r.cpuMicrosPerMessage);
    if (r !== base) {
      addRatio(f, `${c} / SendPack: msg/s`, r.messagesPerSec, base?.messagesPerSec);
      addRatio(f, `${c} / SendPack: confirm p99`, r.confirmLatencyMs.p99, base?.confirmLatencyMs.p99);
    }
  }
  if (st.outbox !== undefined) {
    const { throughput: t, latency: l } = st.outbox;
    f.set("outbox relay: msg/s", t.msgPerSec);
    f.set("outbox relay: COMMIT → delivery p99 ms", l.ms.p99);
    f.set("outbox relay: COMMIT → delivery p50 ms", l.ms.p50);
    addRatio(f, "outbox relay / SendPack packs of 10000: msg/s", t.msgPerSec, t.baselineMsgPerSec);
  }
  for (const r of st.priority ?? []) {
    const c =
      r.priority === "urgent" ? "priority urgent under a bulk backlog" : "priority baseline (all normal)";
    f.set(`${c}: p50 ms`, r.latencyMs.p50);
    f.set(`${c}: p99 ms`, r.latencyMs.p99);
    f.set(`${c}: delivered / sent`, r.sent === 0 ? 0 : r.delivered / r.sent);
    f.set(`${c}: backlog msg/s`, r.bulkDeliveredPerSec);
  }
  for (const r of st.cluster ?? []) {
    const c = `cluster ${r.brokers} brokers ${r.route}`;
    f.set(`${c}: publish msg/s`, r.publishPerSec);
    f.set(`${c}: drain msg/s`, r.drainPerSec);
  }
}

/** Every drain of a store's run (results written before `drains` have only the 100 B `drain`). */
export function drainsOf(st: StoreResults): DrainEntry[] {
  return st.drains ?? (st.drain === undefined ? [] : [st.drain]);
}

function summary(values: (number | null)[]): FigureSummary {
  const xs = values.filter((v): v is number => v !== null);
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const variance = xs.length > 1 ? xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1) : 0;
  return {
    mean,
    min: Math.min(...xs),
    max: Math.max(...xs),
    relStdev: mean === 0 ? 0 : Math.sqrt(variance) / Math.abs(mean),
    values,
  };
}

/** Every figure of every run, "store: what" → its summary over the runs (in first-seen order). */
export function summarizeFigures(stores: readonly StoreResults[]): Record<string, FigureSummary> {
  const runs = Math.max(1, ...stores.map((st) => st.repeat ?? 1));
  const values = new Map<string, (number | null)[]>();
  for (const st of stores) {
    for (const [k, v] of figuresOf(st)) {
      // A percentile of no samples: not measured.
      if (!Number.isFinite(v)) continue;
      const key = `${st.store}: ${k}`;
      let row = values.get(key);
      if (row === undefined) {
        row = new Array<number | null>(runs).fill(null);
        values.set(key, row);
      }
      row[(st.repeat ?? 1) - 1] = v;
    }
  }
  return Object.fromEntries([...values].map(([k, v]) => [k, summary(v)]));
}

/**
 * The checks of issue 14's "Done when", per store: publish ≥ 0.75 × the raw per-row INSERT and
 * ≥ 0.7 × the no-store ceiling (each size, 4 shards); drain ≥ 1.2 × the raw per-row SELECT;
 * the ratios to the run-row ceilings; e2e p99 ≤ 10 ms at 1k and 10k msg/s (p999 shown);
 * overload max RSS ≤ 300 MB with no confirmed message missing (and something confirmed); and broker, database and
 * load-generator CPU µs per message of each phase (figures without a target).
 */
export function checks(results: SuiteResults): Check[] {
  const figs = results.figures;
  const out: Check[] = [];
  const sizes = list(results.options.sizes, "100,1024");
  const stores = [...new Set(results.stores.map((st) => st.store))];
  for (const store of stores) {
    const get = (k: string) => figs[`${store}: ${k}`];
    const fmt = (k: string, f: (n: number) => string = fmtInt) => {
      const s = get(k);
      return s === undefined ? "–" : f(s.mean);
    };
    const most = (k: string) => {
      const s = get(k);
      return s === undefined ? "–" : fmtInt(s.max);
    };
    const cpu = (prefix: string) =>
      `CPU µs/msg: ${PROCESSES.map((p) => `${p} ${fmt(`${prefix}: ${p} CPU µs/msg`, (n) => n.toFixed(1))}`).join(", ")}`;
    const check = (
      target: string,
      key: string,
      test: ((v: number) => boolean) | null,
      detail: string,
      statistic: Statistic = "mean",
    ) => {
      const s = get(key);
      const runs = s?.values.filter((v) => v !== null).length ?? 0;
      const measured =
        s === undefined ? null : statistic === "mean" ? s.mean : statistic === "highest run" ? s.max : s.min;
      out.push({
        store,
        target,
        figure: `${store}: ${key}`,
        measured,
        statistic,
        min: s?.min ?? null,
        max: s?.max ?? null,
        relStdev: s?.relStdev ?? null,
        runs,
        pass: measured === null || test === null ? null : test(measured),
        detail: s === undefined ? "not measured" : detail,
      });
    };
    for (const bytes of sizes) {
      const c = `${bytes} B ${SHARDS} shards`;
      check(
        `publish ≥ 0.75 × raw per-row INSERT (${c})`,
        `publish ${c} / raw per-row INSERT`,
        (v) => v >= 0.75,
        `${fmt(`publish ${c}: msg/s`)} msg/s / ${fmt(`raw per-row INSERT ${c}: rows/s`)} rows/s; ${cpu(`publish ${c}`)}`,
      );
      check(
        `publish ≥ 0.7 × no-store ceiling (${c})`,
        `publish ${c} / no-store`,
        (v) => v >= 0.7,
        `${fmt(`publish ${c}: msg/s`)} / ${fmt(`no-store ${c}: msg/s`)} msg/s; no-store ${cpu(`no-store ${c}`)}`,
      );
      check(
        `publish / raw run-row INSERT (${c}), reported`,
        `publish ${c} / raw run-row INSERT`,
        null,
        `${fmt(`publish ${c}: msg/s`)} / ${fmt(`raw run-row INSERT ${c}: msg/s`)} msg/s; raw client ${fmt(`raw run-row INSERT ${c}: client CPU µs/msg`, (n) => n.toFixed(2))}, db ${fmt(`raw run-row INSERT ${c}: db CPU µs/msg`, (n) => n.toFixed(2))} µs/msg; messages per row: broker ${fmt(`publish ${c}: messages per stored run`)}, ceiling ${fmt(`raw run-row INSERT ${c}: messages per row`)}`,
      );
      check(
        `publish broker CPU µs/msg (${c}), reported`,
        `publish ${c}: broker CPU µs/msg`,
        null,
        cpu(`publish ${c}`),
      );
    }
    for (const bytes of list(results.options["drain-sizes"], "100")) {
      const dc = `${bytes} B ${SHARDS} shards`;
      check(
        `drain with per-message acks ≥ 1.2 × raw per-row SELECT (${dc})`,
        `drain ${dc} / raw per-row SELECT`,
        (v) => v >= 1.2,
        `${fmt(`drain ${dc}: msg/s`)} msg/s / ${fmt(`raw per-row SELECT ${dc}: rows/s`)} rows/s; ${cpu(`drain ${dc}`)}`,
      );
      check(
        `drain / raw run-row SELECT (${dc}), reported`,
        `drain ${dc} / raw run-row SELECT`,
        null,
        `${fmt(`drain ${dc}: msg/s`)} / ${fmt(`raw run-row SELECT ${dc}: msg/s`)} msg/s`,
      );
      check(
        `drain broker CPU µs/msg (${dc}), reported`,
        `drain ${dc}: broker CPU µs/msg`,
        null,
        cpu(`drain ${dc}`),
      );
    }
    for (const rate of E2E_RATES) {
      const c = `e2e ${rate} msg/s`;
      check(
        `e2e p99 ≤ 10 ms at ${fmtInt(rate)} msg/s`,
        `${c}: p99 ms`,
        // Messages never delivered would make any p99 meaningless.
        (v) => v <= 10 && get(`${c}: undelivered`)?.max === 0,
        `p50 ${fmt(`${c}: p50 ms`, fmtMs)} ms, p999 ${fmt(`${c}: p999 ms`, fmtMs)} ms, undelivered ${fmt(`${c}: undelivered`)} (confirmed ${most(`${c}: confirmed undelivered`)} at most); most in a run over 25 ms: event-loop delays ${most(`${c}: event-loop delays > 25 ms`)}, store calls ${most(`${c}: store calls > 25 ms`)}, load generator's event-loop delays ${most(`${c}: loadgen event-loop delays > 25 ms`)}, I/O full stall ms ${most(`${c}: I/O full stall ms`)}; ${cpu(c)}`,
      );
    }
    const keys = Object.keys(figs)
      .filter((k) => k.startsWith(`${store}: `))
      .map((k) => k.slice(store.length + 2));
    featureChecks({ store, keys, get, fmt, check, push: (c) => out.push(c) });
    check(
      "overload max RSS ≤ 300 MB (defaults), every run",
      "overload: max RSS MB",
      (v) => v <= 300,
      `${fmt("overload: confirmed msg/s")} msg/s confirmed; ${cpu("overload")}`,
      "highest run",
    );
    // A broker that refuses everything meets the other two trivially.
    check(
      "overload: messages confirmed (goodput > 0), every run",
      "overload: confirmed msg/s",
      (v) => v > 0,
      "RESOURCE_EXHAUSTED and other errors: see the overload table",
      "lowest run",
    );
    check(
      "overload: zero confirmed messages missing, every run",
      "overload: confirmed messages missing",
      (v) => v === 0,
      "every confirmed seq looked up in the store after each run",
      "highest run",
    );
  }
  return out;
}

/** What featureChecks needs of checks(): one store's figures and the way it adds a check. */
interface CheckScope {
  readonly store: StoreKind;
  /** Its figures' keys, without the store. */
  readonly keys: readonly string[];
  readonly get: (key: string) => FigureSummary | undefined;
  readonly fmt: (key: string, f?: (n: number) => string) => string;
  readonly check: (
    target: string,
    key: string,
    test: ((v: number) => boolean) | null,
    detail: string,
  ) => void;
  readonly push: (c: Check) => void;
}

/**
 * The checks of issue 16's measured targets, per store: a streaming-publish configuration at
 * least as fast as SendPack packs of 1000 at a lower confirm p99 (each configuration, and whether
 * any meets it); the outbox relay ≥ 50,000 msg/s with COMMIT → delivery p99 ≤ 50 ms (MySQL only:
 * the outbox lives in MySQL); urgent latency under a bulk backlog (reported, with its baseline).
 */
function featureChecks({ store, keys, get, fmt, check, push }: CheckScope): void {
  const suffix = " / SendPack: msg/s";
  const configs = keys
    .filter((k) => k.startsWith("stream batch ") && k.endsWith(suffix))
    .map((k) => k.slice(0, -suffix.length));
  const sendPack = "SendPack packs of 1000";
  const meets = (c: string) =>
    (get(`${c}${suffix}`)?.mean ?? 0) >= 1 && (get(`${c} / SendPack: confirm p99`)?.mean ?? 2) < 1;
  for (const c of configs) {
    check(
      `streaming publish ≥ SendPack packs of 1000 at a lower p99 (${c})`,
      `${c}${suffix}`,
      () => meets(c),
      `${fmt(`${c}: msg/s`)} vs ${fmt(`${sendPack}: msg/s`)} msg/s; confirm p99 ${fmt(`${c}: confirm p99 ms`, fmtMs)} vs ${fmt(`${sendPack}: confirm p99 ms`, fmtMs)} ms; broker CPU µs/msg ${fmt(`${c}: broker CPU µs/msg`, (n) => n.toFixed(1))} vs ${fmt(`${sendPack}: broker CPU µs/msg`, (n) => n.toFixed(1))}`,
    );
  }
  const met = configs.filter(meets);
  push({
    store,
    target: "streaming publish: some configuration ≥ SendPack packs of 1000 at a lower p99",
    figure: `${store}: stream configurations meeting the target`,
    measured: configs.length === 0 ? null : met.length,
    statistic: "mean",
    min: null,
    max: null,
    relStdev: null,
    runs: get(`${sendPack}: msg/s`)?.values.filter((v) => v !== null).length ?? 0,
    pass: configs.length === 0 ? null : met.length > 0,
    detail: configs.length === 0 ? "not measured" : `of ${configs.length}: ${met.join(", ") || "none"}`,
  });
  if (store !== "sqlite") {
    check(
      "outbox relay ≥ 50,000 msg/s",
      "outbox relay: msg/s",
      (v) => v >= 50_000,
      `${fmt("outbox relay / SendPack packs of 10000: msg/s", (n) => n.toFixed(2))} × SendPack packs of 10,000 to the same broker`,
    );
    check(
      "outbox relay p99 ≤ 50 ms (COMMIT → delivery)",
      "outbox relay: COMMIT → delivery p99 ms",
      (v) => v <= 50,
      `p50 ${fmt("outbox relay: COMMIT → delivery p50 ms", fmtMs)} ms`,
    );
  }
  const urgent = "priority urgent under a bulk backlog";
  const baseline = "priority baseline (all normal)";
  check(
    "urgent latency p99 under a bulk backlog, reported",
    `${urgent}: p99 ms`,
    null,
    `p50 ${fmt(`${urgent}: p50 ms`, fmtMs)} ms, ${fmt(`${urgent}: delivered / sent`, (n) => `${(100 * n).toFixed(0)} %`)} delivered, backlog ${fmt(`${urgent}: backlog msg/s`)} msg/s meanwhile; without priorities p99 ${fmt(`${baseline}: p99 ms`, fmtMs)} ms, ${fmt(`${baseline}: delivered / sent`, (n) => `${(100 * n).toFixed(0)} %`)} delivered`,
  );
}

/** Fills in figures and checks (also for a results.json written before they existed). */
export function summarize(results: SuiteResults): void {
  results.repeat ??= 1;
  for (const st of results.stores) {
    st.repeat ??= 1;
    st.rawRuns ??= [];
    st.noStore ??= [];
    st.drains ??= drainsOf(st);
  }
  results.figures = summarizeFigures(results.stores);
  results.checks = checks(results);
}
