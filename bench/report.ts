import { execFileSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { type Check, drainsOf } from "./checks.js";
import { cpuCols, errorsText, section, us } from "./lib/markdown.js";
import { REPO } from "./lib/repo.js";
import { fmtInt, fmtMs } from "./lib/stats.js";
import { summaryMarkdown } from "./profile-summary.js";
import { featureSections } from "./report-features.js";
import type { StoreResults, SuiteResults } from "./suite-results.js";

const MB = 1e6;

/** The store, and with several runs (--repeat) which run: every table row and chart group says it. */
function runName(results: SuiteResults, st: StoreResults): string {
  return (results.repeat ?? 1) > 1 ? `${st.store} #${st.repeat}` : st.store;
}

function rawFor(st: StoreResults, shards: number, bytes: number) {
  return st.raw.find((x) => x.shards === shards && x.bytes === bytes);
}

/** A figure of any size: ratios and µs with decimals, rates as integers. */
const num = (v: number) => (Math.abs(v) >= 100 ? fmtInt(v) : v.toFixed(2));

const passText = (p: boolean | null) => (p === null ? "–" : p ? "**pass**" : "**FAIL**");

/** A figure as the checks table shows it: ratios with two decimals, the rest as integers or ms. */
function measuredText(c: Check): string {
  if (c.measured === null) return "n/a";
  const f = (v: number) =>
    c.figure.includes(" / ")
      ? v.toFixed(2)
      : c.figure.endsWith(" ms") || c.figure.includes("µs")
        ? fmtMs(v)
        : fmtInt(v);
  const spread =
    c.runs > 1
      ? ` (${f(c.min!)}–${f(c.max!)}, ±${(100 * (c.relStdev ?? 0)).toFixed(0)} %, ${c.runs} runs)`
      : "";
  return `${c.statistic === "mean" ? "" : "worst "}${f(c.measured)}${spread}`;
}

export function renderMarkdown(results: SuiteResults, rel: (path: string) => string): string {
  const m = results.machine;
  const name = (st: StoreResults) => runName(results, st);
  const out: string[] = [
    "# NerveBus benchmark results",
    "",
    `Run ${results.startedAt}, ${results.durationSec.toFixed(0)} s in all: \`${results.command}\`. Broker source: ${results.source}.`,
    "",
    `Machine: ${m.nproc} CPUs (${m.cpu}), ${m.memoryGiB.toFixed(1)} GiB RAM, ${m.platform}, Node ${m.node}, MariaDB ${m.mariadb}, SQLite ${m.sqlite}. Broker, load generator and database share these CPUs.${m.loadGeneratorHeapGrowth ? ` The load generator runs with ${m.loadGeneratorHeapGrowth}.` : ""}${m.fsync ? ` A 4 KiB write + fdatasync in the stores' temp directory takes ${fmtMs(m.fsync.p50Ms)} ms (p50), ${fmtMs(m.fsync.p99Ms)} ms (p99), ${fmtMs(m.fsync.maxMs)} ms (max).` : ""}`,
    "",
    cpuNote(results),
    "",
    "## Targets (issues 14 and 16)",
    "",
    `Each target on the mean over ${results.repeat ?? 1} run(s) of the selection (bounds that must hold in every run, on the worst), ratios taken against the same run's ceilings (min–max and relative stdev over the runs in brackets); "–" is a figure asked for without a target. The same list is \`checks\` in results.json.`,
    "",
    "| store | target | measured | result | detail |",
    "|---|---|---:|---|---|",
    ...results.checks.map(
      (c) => `| ${c.store} | ${c.target} | ${measuredText(c)} | ${passText(c.pass)} | ${c.detail} |`,
    ),
    "",
    "![throughput](throughput.svg)",
    "",
    "![latency](latency.svg)",
    ...section(
      "Raw baseline (the ceiling)",
      "store | shards: | payload: | rows/INSERT: | INSERT rows/s: | statements (txns)/s: | client µs/row: | db µs/row: | SELECT rows/s:",
      "mysql2 prepared multi-row `INSERT … ON DUPLICATE KEY UPDATE` (`execute`, the broker's statement and row shape) with one statement in flight per shard table; better-sqlite3 one transaction per batch (WAL, synchronous=FULL). Reads: range `SELECT … WHERE seq BETWEEN ? AND ? ORDER BY seq` of 5000 seqs, all shards in parallel, one range at a time.",
    ),
    ...results.stores.flatMap((st) =>
      st.raw.map(
        (r) =>
          `| ${name(st)} | ${r.shards} | ${r.bytes} B | ${r.batchRows} | ${fmtInt(r.insertRowsPerSec)} | ${r.insertStatementsPerSec.toFixed(1)} | ${us(r.insertCpuMicrosPerRow.client)} | ${us(r.insertCpuMicrosPerRow.db)} | ${fmtInt(r.selectRowsPerSec)} |`,
      ),
    ),
  ];
  const cpuRows = results.stores.flatMap((st) => st.rawClientCpu);
  if (cpuRows.length > 0) {
    out.push(
      "",
      "mysql2 client CPU per row for the same 1000-row INSERT, text protocol (`query`: values escaped into the SQL, BLOBs as hex) against prepared statements (`execute`, binary protocol, what the broker and the raw INSERT baseline use):",
      "",
      "| payload | query µs/row | execute µs/row | saving |",
      "|---:|---:|---:|---:|",
      ...cpuRows.map(
        (c) =>
          `| ${c.bytes} B | ${c.queryMicrosPerRow.toFixed(2)} | ${c.executeMicrosPerRow.toFixed(2)} | ${(100 * (1 - c.executeMicrosPerRow / c.queryMicrosPerRow)).toFixed(0)} % |`,
      ),
    );
  }
  out.push(
    ...section(
      "Raw run rows (the format-2 ceiling)",
      "store | shards: | payload: | messages/run: | body bytes: | INSERT msg/s: | rows/s: | client µs/msg: | db µs/msg: | SELECT msg/s: | client µs/msg: | db µs/msg:",
      "Format-2 rows (a run of messages per row, its body the messages' Delivery records back to back as src/wire/run-body.ts encodes them, in the stores' own run tables) straight through the driver: one single-run prepared INSERT in flight per shard, autocommit (MySQL; the broker's fenced transaction is charged to the broker), or one transaction per turn with a run per shard (SQLite). Reads: the broker's range query over all shards, 5000 seqs at a time. Bodies are encoded once, outside the measured loop. CPU columns: writing, then reading.",
    ),
    ...results.stores.flatMap((st) =>
      (st.rawRuns ?? []).map(
        (r) =>
          `| ${name(st)} | ${r.shards} | ${r.bytes} B | ${r.runMessages} | ${fmtInt(r.bodyBytes)} | ${fmtInt(r.insertMessagesPerSec)} | ${fmtInt(r.insertRowsPerSec)} | ${us(r.insertCpuMicrosPerMessage.client)} | ${us(r.insertCpuMicrosPerMessage.db)} | ${fmtInt(r.selectMessagesPerSec)} | ${us(r.selectCpuMicrosPerMessage.client)} | ${us(r.selectCpuMicrosPerMessage.db)} |`,
      ),
    ),
    ...section(
      "No-store ceiling",
      "store | shards: | payload: | publishers × pack | msg/s: | confirm p50 ms: | p99 ms: | broker µs/msg: | db µs/msg: | loadgen µs/msg: | errors",
      "The publish load against a broker whose store confirms every write at once and keeps nothing (bench/no-store-broker.ts, benchmark only): what gRPC, protobuf and the broker's request handling allow on these CPUs. Measured next to each store so that its ratio has a same-run baseline (db: the idle MariaDB).",
    ),
    ...results.stores.flatMap((st) =>
      (st.noStore ?? []).map(
        (p) =>
          `| ${name(st)} | ${p.shards} | ${p.bytes} B | ${p.publishers} × ${p.packSize} | ${fmtInt(p.messagesPerSec)} | ${fmtMs(p.confirmLatencyMs.p50)} | ${fmtMs(p.confirmLatencyMs.p99)} | ${cpuCols(p.cpuMicrosPerMessage)} | ${errorsText(p.errors)} |`,
      ),
    ),
  );
  out.push(
    ...section(
      "Publish",
      "store | shards: | payload: | publishers × pack | msg/s: | payload MiB/s: | confirm p50 ms: | p99 ms: | max ms: | / raw INSERT: | / run-row INSERT: | / no-store: | msg/stored run: | broker µs/msg: | db µs/msg: | loadgen µs/msg: | errors | seqs ok",
      "Concurrent SendPack publishers, one pack in flight each; only packs confirmed durable inside the measured window count. Latency: SendPack call → durable confirm. msg/stored run: the topic's messages per format-2 row afterwards (the run-row ceiling writes --run-messages per row).",
    ),
  );
  for (const st of results.stores) {
    for (const p of st.publish) {
      const raw = rawFor(st, p.shards, p.bytes);
      const same = <T extends { shards: number; bytes: number }>(xs: readonly T[] | undefined) =>
        xs?.find((x) => x.shards === p.shards && x.bytes === p.bytes);
      const ratio = (v: number | undefined) => (v ? (p.messagesPerSec / v).toFixed(2) : "–");
      out.push(
        `| ${name(st)} | ${p.shards} | ${p.bytes} B | ${p.publishers} × ${p.packSize} | ${fmtInt(p.messagesPerSec)} | ${p.payloadMiBPerSec.toFixed(1)} | ${fmtMs(p.confirmLatencyMs.p50)} | ${fmtMs(p.confirmLatencyMs.p99)} | ${fmtMs(p.confirmLatencyMs.max)} | ${ratio(raw?.insertRowsPerSec)} | ${ratio(same(st.rawRuns)?.insertMessagesPerSec)} | ${ratio(same(st.noStore)?.messagesPerSec)} | ${p.messagesPerRun === undefined ? "–" : fmtInt(p.messagesPerRun)} | ${cpuCols(p.cpuMicrosPerMessage)} | ${errorsText(p.errors)} | ${p.seqsOk ? "yes" : "**NO**"} |`,
      );
    }
  }
  out.push(
    ...section(
      "Drain",
      "store | payload: | backlog: | window: | msg/s: | seconds: | first delivery ms: | acks durable s: | / raw SELECT: | / run-row SELECT: | broker µs/msg: | db µs/msg: | loadgen µs/msg: | duplicates: | missing: | preload msg/s:",
      "For each payload size, a backlog (4 shards; the payload bytes of --backlog messages of 100 B) published, then the broker restarted (cold tail cache) and the backlog consumed through one Receive stream, each response acked at once. Rate = backlog / (subscribe → last delivery); first delivery includes the topic's load after the restart; acks durable = until a heartbeat shows the floor at the end of the backlog.",
      ...results.stores.flatMap((st) =>
        drainsOf(st)
          .filter((d) => d.backlog < d.requestedBacklog)
          .map(
            (d) =>
              `**${name(st)}, ${d.bytes} B: the backlog is ${fmtInt(d.backlog)}, not the requested ${fmtInt(d.requestedBacklog)}: publishing it took longer than --preload-seconds.**`,
          ),
      ),
    ),
  );
  for (const st of results.stores) {
    for (const d of drainsOf(st)) {
      const raw = rawFor(st, d.shards, d.bytes);
      const runs = st.rawRuns?.find((x) => x.shards === d.shards && x.bytes === d.bytes);
      out.push(
        `| ${name(st)} | ${d.bytes} B | ${fmtInt(d.backlog)} | ${fmtInt(d.window)} | ${fmtInt(d.messagesPerSec)} | ${d.seconds.toFixed(1)} | ${fmtInt(d.firstDeliveryMs)} | ${d.ackedDurableSeconds?.toFixed(1) ?? "–"} | ${raw ? (d.messagesPerSec / raw.selectRowsPerSec).toFixed(2) : "–"} | ${runs ? (d.messagesPerSec / runs.selectMessagesPerSec).toFixed(2) : "–"} | ${cpuCols(d.cpuMicrosPerMessage)} | ${d.duplicates} | ${d.missing} | ${fmtInt(d.preloadRate)} |`,
      );
    }
  }
  out.push(
    ...section(
      "End-to-end latency",
      "store | target msg/s: | sent msg/s: | tick ms: | p50 ms: | p99 ms: | p999 ms: | max ms: | confirm p50 ms: | confirm p99 ms: | raw commit p50 ms: | raw commit p99 ms: | raw fenced run p99 ms: | broker µs/msg: | db µs/msg: | loadgen µs/msg: | event-loop delays > 25 (> 100) ms: | store calls > 25 (> 100) ms: | loadgen event-loop delays > 25 (> 100) ms: | I/O full stall ms: | undelivered: | of those confirmed: | errors",
      "One publisher at a fixed rate (a pack every tick with the messages due, each payload stamped with the send time) and one subscriber keeping up and acking; latency = delivery time − stamp, same process clock.",
      "The raw columns are the ceiling: the same rows written straight through the driver at the same rate and tick, 4 shards, one batch in flight (latency = commit − the time the row fell due). Raw fenced run (MySQL): the broker's write shape through the driver: each tick one run row in one shard, in a transaction of START, fence UPDATE, INSERT, COMMIT.",
      "What held the broker up during the measured window, from its /metrics at the window's start and end: event-loop delays (nervebus_event_loop_delay_seconds: its thread busy or paused, a timer due every 20 ms late by that much) and store statements (nervebus_store_seconds) over 25 and over 100 ms. A stall with slow store calls and no loop delay is the disk or the database; one with loop delays is the broker's own thread. The load generator's own event-loop delays (sampled the same way in its process) stamp deliveries late as well. I/O full stall: the time Linux saw every runnable task of the machine waiting for the disk (/proc/pressure/io) in the window. Undelivered: messages sent and never delivered, refused packs included (RESOURCE_EXHAUSTED when a stall fills the publisher connection's packs in progress); of those confirmed: messages whose pack was confirmed and that were never delivered, a loss.",
    ),
  );
  for (const st of results.stores) {
    for (const e of st.e2e) {
      const raw = st.rawLatency.find((x) => x.rate === e.targetRate);
      out.push(
        `| ${name(st)} | ${fmtInt(e.targetRate)} | ${fmtInt(e.achievedRate)} | ${e.tickMs} | ${fmtMs(e.latencyMs.p50)} | ${fmtMs(e.latencyMs.p99)} | ${fmtMs(e.latencyMs.p999)} | ${fmtMs(e.latencyMs.max)} | ${fmtMs(e.confirmLatencyMs.p50)} | ${fmtMs(e.confirmLatencyMs.p99)} | ${raw ? fmtMs(raw.latencyMs.p50) : "–"} | ${raw ? fmtMs(raw.latencyMs.p99) : "–"} | ${raw?.fencedLatencyMs ? fmtMs(raw.fencedLatencyMs.p99) : "–"} | ${cpuCols(e.cpuMicrosPerMessage)} | ${e.stalls ? `${e.stalls.loopOver25ms} (${e.stalls.loopOver100ms})` : "–"} | ${e.stalls ? `${e.stalls.storeOver25ms} (${e.stalls.storeOver100ms})` : "–"} | ${e.stalls ? `${e.stalls.loadgenOver25ms} (${e.stalls.loadgenOver100ms})` : "–"} | ${e.stalls?.ioFullStallMs?.toFixed(0) ?? "–"} | ${e.undelivered} | ${e.confirmedUndelivered ?? "–"} | ${errorsText(e.errors)}${e.error ? `; stream: ${e.error}` : ""} |`,
      );
    }
  }
  out.push(
    ...section(
      "Overload",
      "store | seconds: | publishers × in flight × pack | confirmed msg/s: | RESOURCE_EXHAUSTED: | other errors | confirms > 1 s: | confirm p99 ms: | max ms: | max RSS: | confirmed: | stored of those: | stored, not confirmed: | shutdown exit | broker µs/msg: | db µs/msg: | loadgen µs/msg:",
      `Publishers at full speed, several packs in flight each, no consumer. Broker RSS sampled from /proc/PID/status every 100 ms. Afterwards the broker is stopped (SIGTERM) and the topic is read back through the broker's Store, each stored seq looked up in the confirmed ranges. The broker runs with ${[...new Set(results.stores.map((st) => st.overload?.nodeOptions).filter((x) => x !== undefined))].map((x) => (x === "" ? "no Node options" : `\`${x}\``)).join(" / ") || "its defaults"} (the container image's NODE_OPTIONS unless --overload-node-options says otherwise).`,
    ),
  );
  for (const st of results.stores) {
    const o = st.overload;
    if (o === undefined) continue;
    const other = { ...o.errors };
    delete other.RESOURCE_EXHAUSTED;
    out.push(
      `| ${name(st)} | ${o.durationSec.toFixed(0)} | ${o.publishers} × ${o.inflight} × ${o.packSize} (${o.bytes} B) | ${fmtInt(o.messagesPerSec)} | ${o.resourceExhausted} | ${errorsText(other)} | ${o.slowConfirms} | ${fmtMs(o.confirmLatencyMs.p99)} | ${fmtMs(o.confirmLatencyMs.max)} | ${(o.maxRssBytes / MB).toFixed(0)} MB | ${fmtInt(o.verify.confirmed)} | ${fmtInt(o.verify.found)} | ${fmtInt(o.verify.storedUnconfirmed)} | ${o.shutdown} | ${o.cpuMicrosPerMessage ? cpuCols(o.cpuMicrosPerMessage) : "– | – | –"} |`,
    );
  }
  const peaks = results.stores.filter((st) => st.overload?.memoryAtPeak !== undefined);
  if (peaks.length > 0) {
    const mb = (b: number) => `${(b / MB).toFixed(0)} MB`;
    out.push(
      "",
      "Where the memory is, at the broker's highest RSS seen through its own GET /api/status (process.memoryUsage(), every 500 ms): V8 heap, external memory (Buffers: request bytes, payloads, driver packets) and the rest (code, stacks, malloc fragmentation).",
      "",
      "| store | RSS | V8 heap used | V8 heap total | external (Buffers) | of which ArrayBuffers | rest of RSS | write buffer in use |",
      "|---|---:|---:|---:|---:|---:|---:|---:|",
      ...peaks.map((st) => {
        const m = st.overload!.memoryAtPeak!;
        return `| ${name(st)} | ${mb(m.rss)} | ${mb(m.heapUsed)} | ${mb(m.heapTotal)} | ${mb(m.external)} | ${mb(m.arrayBuffers)} | ${mb(m.rss - m.heapTotal - m.external)} | ${mb(m.bufferedBytes)} |`;
      }),
    );
  }
  out.push("", "![broker RSS under overload](rss.svg)");
  out.push(...featureSections(results, name));
  const profiles = results.stores.flatMap((st) => [
    ...(["publish", "drain", "e2e"] as const).flatMap((kind) => {
      const p = st.profiles[kind];
      return p ? [summaryMarkdown(`${st.store}, ${kind}`, { ...p, file: rel(p.file) }, 15)] : [];
    }),
    ...(st.longTasks.length === 0
      ? []
      : [
          `#### ${st.store}, e2e: longest event-loop stalls (after start-up)`,
          "",
          "Wall-clock sampling: a stretch also counts time the broker was descheduled (2 CPUs shared with the load generator and the database).",
          "",
          "| stall | at | heaviest stacks (ms) |",
          "|---:|---:|---|",
          ...st.longTasks.map(
            (t) =>
              `| ${t.ms.toFixed(1)} ms | ${(t.startMs / 1000).toFixed(2)} s | ${t.top.map((x) => `${x.ms.toFixed(1)} \`${x.stack.replace(/\|/g, "\\|")}\``).join("<br>")} |`,
          ),
          "",
        ]),
  ]);
  if (profiles.length > 0) out.push("", "## Broker CPU profiles", "", ...profiles);
  out.push(
    ...section(
      "CPU use per phase",
      "store | phase | seconds: | suite CPU-s: | other CPU-s: | other CPUs busy (avg):",
      "CPU-seconds of the suite's own processes (load generator, brokers, MariaDB) and of everything else on the machine, from /proc. Anything but ~0 in the last column means other work shared the CPUs and the phase's figures are pessimistic.",
    ),
  );
  for (const st of results.stores) {
    for (const [phase, c] of Object.entries(st.cpu)) {
      out.push(
        `| ${name(st)} | ${phase} | ${c.seconds.toFixed(0)} | ${c.ownCpuSec.toFixed(1)} | ${c.otherCpuSec.toFixed(1)} | ${c.otherCpus.toFixed(2)} |`,
      );
    }
  }
  if ((results.repeat ?? 1) > 1) {
    out.push(
      ...section(
        "Run-to-run variance",
        "figure | mean: | min: | max: | rel. stdev: | each run",
        `Every figure over the ${results.repeat} runs of the selection (\`figures\` in results.json).`,
      ),
      ...Object.entries(results.figures).map(
        ([k, f]) =>
          `| ${k} | ${num(f.mean)} | ${num(f.min)} | ${num(f.max)} | ${(100 * f.relStdev).toFixed(1)} % | ${f.values.map((v) => (v === null ? "–" : num(v))).join(", ")} |`,
      ),
    );
  }
  const errors = results.stores.flatMap((st) => st.errors);
  if (errors.length > 0) out.push("", "## Errors and broker warnings", "", "```", ...errors, "```");
  out.push("");
  return out.join("\n");
}

// --- SVG charts ------------------------------------------------------------------------------

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

interface Bar {
  readonly label: string;
  readonly value: number;
  readonly color: string;
  readonly text: string;
}

/** Horizontal bar chart: groups of bars, one scale. */
function barChart(title: string, groups: { name: string; bars: Bar[] }[], unit: string): string {
  const labelW = 250;
  const chartW = 520;
  const barH = 16;
  const gap = 4;
  const groupGap = 14;
  const max = Math.max(1, ...groups.flatMap((g) => g.bars.map((b) => b.value)).filter(Number.isFinite));
  let y = 40;
  const parts: string[] = [];
  for (const g of groups) {
    parts.push(`<text x="8" y="${y + 12}" font-weight="bold">${esc(g.name)}</text>`);
    y += 18;
    for (const b of g.bars) {
      const w = Number.isFinite(b.value) ? Math.max(1, (b.value / max) * chartW) : 0;
      parts.push(
        `<text x="${labelW - 6}" y="${y + barH - 4}" text-anchor="end">${esc(b.label)}</text>`,
        `<rect x="${labelW}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${b.color}"/>`,
        `<text x="${labelW + w + 4}" y="${y + barH - 4}">${esc(b.text)}</text>`,
      );
      y += barH + gap;
    }
    y += groupGap;
  }
  const width = labelW + chartW + 150;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y + 10}" font-family="sans-serif" font-size="12">`,
    `<title>${esc(title)}</title>`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="8" y="20" font-size="15" font-weight="bold">${esc(title)}</text>`,
    `<text x="${width - 8}" y="20" text-anchor="end" fill="#555">${esc(unit)}</text>`,
    ...parts,
    "</svg>",
    "",
  ].join("\n");
}

const RAW = "#9e9e9e";
const BUS = "#1f77b4";
/** The latency bars of each rate, in this order, lighter to darker. */
const PERCENTILE_COLORS = { p50: "#8fbbd9", p99: "#1f77b4", p999: "#0b3c61" } as const;

export function renderCharts(results: SuiteResults): Record<string, string> {
  const groups: { name: string; bars: Bar[] }[] = [];
  for (const st of results.stores) {
    const bars: Bar[] = [];
    for (const p of st.publish) {
      const raw = rawFor(st, p.shards, p.bytes);
      const cfg = `${p.shards} shard${p.shards > 1 ? "s" : ""}, ${p.bytes} B`;
      if (raw)
        bars.push({
          label: `raw INSERT ${cfg}`,
          value: raw.insertRowsPerSec,
          color: RAW,
          text: fmtInt(raw.insertRowsPerSec),
        });
      bars.push({
        label: `publish ${cfg}`,
        value: p.messagesPerSec,
        color: BUS,
        text: `${fmtInt(p.messagesPerSec)}${raw ? ` (${(p.messagesPerSec / raw.insertRowsPerSec).toFixed(2)}×)` : ""}`,
      });
    }
    const d = st.drain;
    if (d) {
      const raw = rawFor(st, d.shards, d.bytes);
      if (raw)
        bars.push({
          label: "raw SELECT 4 shards, 100 B",
          value: raw.selectRowsPerSec,
          color: RAW,
          text: fmtInt(raw.selectRowsPerSec),
        });
      bars.push({
        label: "drain 4 shards, 100 B",
        value: d.messagesPerSec,
        color: BUS,
        text: `${fmtInt(d.messagesPerSec)}${raw ? ` (${(d.messagesPerSec / raw.selectRowsPerSec).toFixed(2)}×)` : ""}`,
      });
    }
    groups.push({ name: runName(results, st), bars });
  }
  const latency: { name: string; bars: Bar[] }[] = results.stores.map((st) => ({
    name: runName(results, st),
    bars: st.e2e.flatMap((e) => [
      ...st.rawLatency
        .filter((x) => x.rate === e.targetRate)
        .map((x) => ({
          label: `${fmtInt(e.targetRate)} rows/s raw commit p99`,
          value: x.latencyMs.p99,
          color: RAW,
          text: `${fmtMs(x.latencyMs.p99)} ms`,
        })),
      ...(Object.keys(PERCENTILE_COLORS) as (keyof typeof PERCENTILE_COLORS)[]).map((q) => ({
        label: `${fmtInt(e.targetRate)} msg/s ${q}`,
        value: e.latencyMs[q],
        color: PERCENTILE_COLORS[q],
        text: `${fmtMs(e.latencyMs[q])} ms`,
      })),
    ]),
  }));
  return {
    "rss.svg": lineChart(
      "Broker RSS under overload",
      results.stores.flatMap((st, i) =>
        st.overload
          ? [{ name: runName(results, st), color: i === 0 ? BUS : "#d62728", points: st.overload.rssSeries }]
          : [],
      ),
      300 * MB,
    ),
    "throughput.svg": barChart("NerveBus vs raw driver ceiling (grey)", groups, "messages (rows) per second"),
    "latency.svg": barChart(
      "End-to-end latency, publish → delivery (grey: raw driver commit at the same rate)",
      latency,
      "milliseconds",
    ),
  };
}

/** RSS (MB) over time, one line per store, with the target as a dashed line. */
function lineChart(
  title: string,
  series: { name: string; color: string; points: [number, number][] }[],
  limitBytes: number,
): string {
  const W = 760;
  const H = 320;
  const left = 60;
  const right = 20;
  const top = 40;
  const bottom = 40;
  const maxT = Math.max(1, ...series.flatMap((s) => s.points.map((p) => p[0])));
  const top100 = 100 * MB;
  const maxY =
    Math.ceil(Math.max(limitBytes * 1.2, ...series.flatMap((s) => s.points.map((p) => p[1]))) / top100) *
    top100;
  const x = (t: number) => left + (t / maxT) * (W - left - right);
  const y = (v: number) => top + (1 - v / maxY) * (H - top - bottom);
  const parts: string[] = [];
  for (let i = 0; i <= 4; i++) {
    const v = (maxY * i) / 4;
    parts.push(
      `<line x1="${left}" x2="${W - right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#eee"/>`,
      `<text x="${left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${(v / MB).toFixed(0)}</text>`,
    );
  }
  parts.push(
    `<line x1="${left}" x2="${W - right}" y1="${y(limitBytes).toFixed(1)}" y2="${y(limitBytes).toFixed(1)}" stroke="#d62728" stroke-dasharray="6 4"/>`,
    `<text x="${W - right}" y="${(y(limitBytes) - 4).toFixed(1)}" text-anchor="end" fill="#d62728">target ${(limitBytes / MB).toFixed(0)} MB</text>`,
    `<text x="${left}" y="${H - 10}">0 s</text>`,
    `<text x="${W - right}" y="${H - 10}" text-anchor="end">${maxT.toFixed(0)} s</text>`,
  );
  series.forEach((s, i) => {
    const d = s.points
      .map((p, k) => `${k === 0 ? "M" : "L"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`)
      .join(" ");
    parts.push(
      `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"/>`,
      `<text x="${left + 10 + i * 90}" y="${top - 8}" fill="${s.color}" font-weight="bold">${esc(s.name)}</text>`,
    );
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<title>${esc(title)}</title>`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="8" y="20" font-size="15" font-weight="bold">${esc(title)}</text>`,
    `<text x="${W - 8}" y="20" text-anchor="end" fill="#555">MB (10^6 bytes)</text>`,
    ...parts,
    "</svg>",
    "",
  ].join("\n");
}

function cpuNote(results: SuiteResults): string {
  const c = results.cpu;
  const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(" / ");
  const base = `Load average (1/5/15 min) at start ${load(results.loadavgStart)}, at end ${load(results.loadavgEnd)}.`;
  if (c === undefined) return base;
  const other = `Other processes used ${c.otherCpuSec.toFixed(0)} CPU-s during the run (${c.otherCpus.toFixed(2)} CPUs on average); the suite used ${c.ownCpuSec.toFixed(0)} CPU-s.`;
  const warn =
    c.otherCpus > 0.15
      ? " **The machine was shared with other work: throughput and latency figures are pessimistic; see the per-phase table.**"
      : "";
  return `${base} ${other}${warn}`;
}

/**
 * Writes results.json, results.md and the charts into `dir`. The JSON and Markdown are then put
 * in the repository's Biome format (best effort), so `biome check` stays clean if the results
 * are committed.
 */
export function writeResults(dir: string, results: SuiteResults): string {
  const md = renderMarkdown(results, (p) => relative(dir, p));
  const json = join(dir, "results.json");
  writeFileSync(json, `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(join(dir, "results.md"), md);
  for (const [name, svg] of Object.entries(renderCharts(results))) writeFileSync(join(dir, name), svg);
  const biome = join(REPO, "node_modules", ".bin", "biome");
  if (existsSync(biome)) {
    try {
      execFileSync(biome, ["format", "--write", json, join(dir, "results.md")], {
        cwd: REPO,
        stdio: "ignore",
      });
    } catch {
      // Outside the repository's Biome includes, or Biome missing: the JSON is valid either way.
    }
  }
  return md;
}
