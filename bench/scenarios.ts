import type * as grpc from "@grpc/grpc-js";
import type { BrokerProcess } from "./lib/broker.js";
import {
  ioFullStallMicros,
  LoopDelayCounter,
  type Stalls,
  scrapeMetrics,
  stallsBetween,
} from "./lib/broker-metrics.js";
import { CpuPerMessage } from "./lib/cpu.js";
import { fmtInt, fmtMs, now, type Percentiles, percentiles, progress, Samples, sleep } from "./lib/stats.js";
import {
  encodeAcks,
  encodePack,
  encodeStampedPack,
  encodeSubscribe,
  openReceive,
  type ReceiveBatch,
  rawClient,
  sendPack,
  statusName,
} from "./lib/wire.js";

/** Counts of failed calls by gRPC status name. */
export type ErrorCounts = Record<string, number>;

/** Processes whose CPU time per message is reported: { broker: pid, db: pid, loadgen: pid }. */
export type Pids = Readonly<Record<string, number | undefined>>;

function countError(errors: ErrorCounts, err: unknown): string {
  const name = statusName(err);
  errors[name] = (errors[name] ?? 0) + 1;
  return name;
}

// ---------------------------------------------------------------------------------------------
// Publish: N publishers, each with one SendPack in flight, at full speed.

export interface PublishOptions {
  readonly publishers: number;
  readonly packSize: number;
  readonly bytes: number;
  readonly durationMs: number;
  readonly warmupMs: number;
  readonly deadlineMs: number;
}

export interface PublishResult {
  readonly publishers: number;
  readonly packSize: number;
  readonly bytes: number;
  /** Messages in packs confirmed durable within the measured window, per second. */
  readonly messagesPerSec: number;
  readonly payloadMiBPerSec: number;
  readonly confirmLatencyMs: Percentiles;
  readonly errors: ErrorCounts;
  /** Every confirmed pack got packSize consecutive seqs, and no seq twice. */
  readonly seqsOk: boolean;
  /** CPU microseconds per confirmed message, per process, over the measured window. */
  readonly cpuMicrosPerMessage: Record<string, number>;
}

export async function runPublish(
  address: string,
  topic: string,
  o: PublishOptions,
  label: string,
  pids: Pids = {},
): Promise<PublishResult> {
  const request = encodePack(topic, o.packSize, o.bytes);
  const clients = Array.from({ length: o.publishers }, () => rawClient(address));
  const latencies = new Samples();
  const errors: ErrorCounts = {};
  let seqsOk = true;
  let confirmed = 0;
  let total = 0;
  const seen: [number, number][] = [];
  const start = now();
  const measureFrom = start + o.warmupMs;
  const end = measureFrom + o.durationMs;
  const ticker = setInterval(() => {
    const t = now();
    const rate = t > measureFrom ? confirmed / ((t - measureFrom) / 1000) : 0;
    progress.update(`${label}: ${fmtInt(rate)} msg/s, ${fmtInt(total)} confirmed`);
  }, 200);
  const cpu = new CpuPerMessage(pids);
  const cpuTimers = [
    setTimeout(() => cpu.start(), o.warmupMs),
    setTimeout(() => cpu.stop(), o.warmupMs + o.durationMs),
  ];
  try {
    await Promise.all(
      clients.map(async (client) => {
        while (now() < end) {
          const t0 = now();
          try {
            const r = await sendPack(client, request, o.deadlineMs);
            const t1 = now();
            total += o.packSize;
            if (r.lastSeq - r.firstSeq + 1 !== o.packSize) seqsOk = false;
            seen.push([r.firstSeq, r.lastSeq]);
            if (t1 >= measureFrom && t1 <= end) confirmed += o.packSize;
            if (t0 >= measureFrom && t1 <= end) latencies.push(t1 - t0);
          } catch (err) {
            countError(errors, err);
            await sleep(20);
          }
        }
      }),
    );
  } finally {
    clearInterval(ticker);
    for (const t of cpuTimers) clearTimeout(t);
    cpu.stop();
    for (const c of clients) c.close();
  }
  seen.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < seen.length; i++) if (seen[i]![0] <= seen[i - 1]![1]) seqsOk = false;
  const rate = confirmed / (o.durationMs / 1000);
  const result: PublishResult = {
    publishers: o.publishers,
    packSize: o.packSize,
    bytes: o.bytes,
    messagesPerSec: rate,
    payloadMiBPerSec: (rate * o.bytes) / (1 << 20),
    confirmLatencyMs: percentiles(latencies.values()),
    errors,
    seqsOk,
    cpuMicrosPerMessage: cpu.perMessage(confirmed),
  };
  progress.done(
    `${label}: ${fmtInt(rate)} msg/s, confirm p50 ${fmtMs(result.confirmLatencyMs.p50)} ms p99 ${fmtMs(result.confirmLatencyMs.p99)} ms`,
  );
  return result;
}

// ---------------------------------------------------------------------------------------------
// Preload: publish exactly `total` messages as fast as possible (the drain's backlog).

export async function preload(
  address: string,
  topic: string,
  o: { total: number; packSize: number; bytes: number; publishers: number; maxMs: number },
  label: string,
): Promise<{ seconds: number; messagesPerSec: number; lastSeq: number; published: number }> {
  const request = encodePack(topic, o.packSize, o.bytes);
  const tail = o.total % o.packSize === 0 ? undefined : encodePack(topic, o.total % o.packSize, o.bytes);
  const clients = Array.from({ length: o.publishers }, () => rawClient(address));
  let issued = 0;
  let done = 0;
  let lastSeq = 0;
  const start = now();
  try {
    await Promise.all(
      clients.map(async (client) => {
        // Bounded in time: a slow broker gets a smaller backlog, not a longer suite.
        while (issued < o.total && now() - start < o.maxMs) {
          const n = Math.min(o.packSize, o.total - issued);
          issued += n;
          for (let attempt = 0; ; attempt++) {
            try {
              const r = await sendPack(client, n === o.packSize ? request : tail!, 60_000);
              lastSeq = Math.max(lastSeq, r.lastSeq);
              break;
            } catch (err) {
              // Retrying an unknown outcome could duplicate the pack; only backpressure is retried.
              if (statusName(err) !== "RESOURCE_EXHAUSTED" || attempt > 100) throw err;
              await sleep(50);
            }
          }
          done += n;
          if (progress.due) progress.update(`${label}: preload ${fmtInt(done)} / ${fmtInt(o.total)}`);
        }
      }),
    );
  } finally {
    for (const c of clients) c.close();
  }
  const seconds = (now() - start) / 1000;
  return { seconds, messagesPerSec: done / seconds, lastSeq, published: done };
}

// ---------------------------------------------------------------------------------------------
// Receive helpers.

interface Subscriber {
  readonly call: grpc.ClientDuplexStream<Buffer, ReceiveBatch>;
  readonly client: grpc.Client;
  subscribed: Promise<{ floor: number; lastSeq: number }>;
  ended: Promise<void>;
  error: string | undefined;
}

function subscribe(
  address: string,
  topic: string,
  subscription: string,
  opts: { maxMessages: number; from: "earliest" | "latest"; stamps: boolean },
  onBatch: (b: ReceiveBatch, call: grpc.ClientDuplexStream<Buffer, ReceiveBatch>) => void,
): Subscriber {
  const client = rawClient(address);
  const call = openReceive(client, opts.stamps);
  let resolveSub: (v: { floor: number; lastSeq: number }) => void = () => undefined;
  let rejectSub: (e: Error) => void = () => undefined;
  const sub: Subscriber = {
    call,
    client,
    subscribed: new Promise((res, rej) => {
      resolveSub = res;
      rejectSub = rej;
    }),
    ended: Promise.resolve(),
    error: undefined,
  };
  sub.ended = new Promise<void>((resolve) => {
    call.on("status", () => resolve());
    call.on("error", (err: grpc.ServiceError) => {
      if (err.code !== 1) sub.error = `${statusName(err)}: ${err.details}`; // 1 = CANCELLED by us
      rejectSub(err);
      resolve();
    });
  });
  sub.subscribed.catch(() => undefined);
  call.on("data", (b: ReceiveBatch) => {
    if (b.subscribed) resolveSub(b.subscribed);
    onBatch(b, call);
  });
  call.write(encodeSubscribe(topic, subscription, { maxMessages: opts.maxMessages, from: opts.from }));
  return sub;
}

async function closeSubscriber(sub: Subscriber): Promise<void> {
  sub.call.end();
  await Promise.race([sub.ended, sleep(2000)]);
  sub.call.cancel();
  sub.client.close();
}

// ---------------------------------------------------------------------------------------------
// Drain: a backlog read and acked through one Receive stream with a large window.

export interface DrainResult {
  readonly backlog: number;
  readonly window: number;
  /** Subscribe sent → last message delivered. */
  readonly seconds: number;
  readonly messagesPerSec: number;
  readonly firstDeliveryMs: number;
  /** Subscribe sent → a heartbeat shows the floor at the end of the backlog (acks durable). */
  readonly ackedDurableSeconds: number | undefined;
  readonly delivered: number;
  readonly duplicates: number;
  readonly missing: number;
  readonly error: string | undefined;
  /** CPU microseconds per delivered message, per process, subscribe → last delivery. */
  readonly cpuMicrosPerMessage: Record<string, number>;
}

export async function runDrain(
  address: string,
  topic: string,
  subscription: string,
  o: { backlog: number; window: number; timeoutMs: number },
  label: string,
  pids: Pids = {},
): Promise<DrainResult> {
  const cpu = new CpuPerMessage(pids);
  cpu.start();
  const seen = new Uint8Array(o.backlog + 1);
  let delivered = 0;
  let duplicates = 0;
  let floor = 0;
  let first = 0;
  let last = 0;
  let wake: () => void = () => undefined;
  const start = now();
  const sub = subscribe(
    address,
    topic,
    subscription,
    { maxMessages: o.window, from: "earliest", stamps: false },
    (b, call) => {
      if (b.seqs.length > 0) {
        const t = now();
        if (first === 0) first = t;
        for (const seq of b.seqs) {
          if (seq > o.backlog) continue;
          if (seen[seq] === 1) duplicates++;
          else {
            seen[seq] = 1;
            delivered++;
          }
        }
        call.write(encodeAcks(b.seqs));
        if (delivered === o.backlog && last === 0) {
          last = t;
          cpu.stop();
        }
        if (progress.due)
          progress.update(
            `${label}: ${fmtInt(delivered)} / ${fmtInt(o.backlog)}, ${fmtInt(delivered / ((t - start) / 1000))} msg/s`,
          );
      }
      if (b.heartbeat) floor = b.heartbeat.floor;
      wake();
    },
  );
  const deadline = start + o.timeoutMs;
  let ackedAt: number | undefined;
  while (now() < deadline && sub.error === undefined) {
    if (last !== 0 && floor >= o.backlog) {
      ackedAt = now();
      break;
    }
    await new Promise<void>((resolve) => {
      wake = resolve;
      setTimeout(resolve, 100);
    });
  }
  await closeSubscriber(sub);
  const end = last === 0 ? now() : last;
  const seconds = (end - start) / 1000;
  const result: DrainResult = {
    backlog: o.backlog,
    window: o.window,
    seconds,
    messagesPerSec: delivered / seconds,
    firstDeliveryMs: first === 0 ? Number.NaN : first - start,
    ackedDurableSeconds: ackedAt === undefined ? undefined : (ackedAt - start) / 1000,
    delivered,
    duplicates,
    missing: o.backlog - delivered,
    error: sub.error ?? (last === 0 ? `timed out after ${o.timeoutMs} ms` : undefined),
    cpuMicrosPerMessage: cpu.perMessage(last === 0 ? 0 : delivered),
  };
  progress.done(
    `${label}: ${fmtInt(result.messagesPerSec)} msg/s (${fmtInt(delivered)} in ${seconds.toFixed(1)} s)${result.error ? ` ERROR ${result.error}` : ""}`,
  );
  return result;
}

// ---------------------------------------------------------------------------------------------
// End-to-end latency at a fixed publish rate, one subscriber keeping up.

export interface E2EOptions {
  readonly rate: number;
  readonly durationMs: number;
  readonly warmupMs: number;
  /** A pack goes out every tickMs with the messages due by then. */
  readonly tickMs: number;
  readonly bytes: number;
  readonly window: number;
}

export interface E2EResult {
  readonly targetRate: number;
  readonly achievedRate: number;
  readonly tickMs: number;
  readonly latencyMs: Percentiles;
  readonly confirmLatencyMs: Percentiles;
  readonly sent: number;
  /** Messages sent and never delivered: refused packs included. */
  readonly undelivered: number;
  /** Messages whose pack was confirmed and that were never delivered: a loss; must be 0. */
  readonly confirmedUndelivered?: number | undefined;
  readonly errors: ErrorCounts;
  readonly error: string | undefined;
  /** CPU microseconds per message, per process, over the measured window. */
  readonly cpuMicrosPerMessage: Record<string, number>;
  /** What held the broker up in the measured window (its /metrics); absent without an HTTP port. */
  readonly stalls?: Stalls | undefined;
}

export async function runE2E(
  address: string,
  topic: string,
  o: E2EOptions,
  label: string,
  pids: Pids = {},
  metricsAddress?: string,
): Promise<E2EResult> {
  const latencies = new Samples();
  const confirms = new Samples();
  const errors: ErrorCounts = {};
  let received = 0;
  // Seqs delivered, and the seq ranges confirmed: every confirmed seq must be delivered.
  const delivered = new Set<number>();
  const confirmedRanges: [number, number][] = [];
  const sub = subscribe(
    address,
    topic,
    "e2e",
    { maxMessages: o.window, from: "latest", stamps: true },
    (b, call) => {
      if (b.seqs.length === 0) return;
      for (const seq of b.seqs) delivered.add(seq);
      const t = now();
      for (const stamp of b.stamps) {
        received++;
        if (stamp >= measureFrom) latencies.push(t - stamp);
      }
      call.write(encodeAcks(b.seqs));
    },
  );
  await sub.subscribed;
  const client = rawClient(address);
  const start = now();
  const measureFrom = start + o.warmupMs;
  const end = measureFrom + o.durationMs;
  let sent = 0;
  let outstanding = 0;
  const cpu = new CpuPerMessage(pids);
  let sentAtStart = 0;
  let sentAtEnd = 0;
  let stopped = false;
  // The broker's histograms at the measured window's start and end.
  let metricsAtStart: Promise<string | undefined> = Promise.resolve(undefined);
  let metricsAtEnd: Promise<string | undefined> = Promise.resolve(undefined);
  let ownLoop: LoopDelayCounter | undefined;
  const ioFull: { before: number | undefined; after: number | undefined } = {
    before: undefined,
    after: undefined,
  };
  const stopCpu = () => {
    if (stopped) return;
    stopped = true;
    cpu.stop();
    ownLoop?.stop();
    ioFull.after = ioFullStallMicros();
    sentAtEnd = sent;
    metricsAtEnd = scrapeMetrics(metricsAddress);
  };
  const cpuTimers = [
    setTimeout(() => {
      cpu.start();
      sentAtStart = sent;
      metricsAtStart = scrapeMetrics(metricsAddress);
      ownLoop = new LoopDelayCounter();
      ioFull.before = ioFullStallMicros();
    }, o.warmupMs),
    setTimeout(stopCpu, o.warmupMs + o.durationMs),
  ];
  while (now() < end) {
    const t = now();
    let due = Math.floor((o.rate * (t - start)) / 1000) - sent;
    while (due > 0 && outstanding < 2000) {
      const n = Math.min(due, 1000);
      due -= n;
      sent += n;
      outstanding++;
      const t0 = now();
      sendPack(client, encodeStampedPack(topic, n, o.bytes, t0), 10_000).then(
        (r) => {
          outstanding--;
          confirmedRanges.push([r.firstSeq, r.lastSeq]);
          if (t0 >= measureFrom) confirms.push(now() - t0);
        },
        (err: unknown) => {
          outstanding--;
          countError(errors, err);
        },
      );
    }
    if (progress.due) progress.update(`${label}: sent ${fmtInt(sent)}, received ${fmtInt(received)}`);
    await sleep(o.tickMs);
  }
  stopCpu();
  const sentSecs = (now() - start) / 1000;
  const waitUntil = now() + 10_000;
  while (received < sent && now() < waitUntil && sub.error === undefined) await sleep(20);
  await closeSubscriber(sub);
  client.close();
  for (const t of cpuTimers) clearTimeout(t);
  const result: E2EResult = {
    targetRate: o.rate,
    achievedRate: sent / sentSecs,
    tickMs: o.tickMs,
    latencyMs: percentiles(latencies.values()),
    confirmLatencyMs: percentiles(confirms.values()),
    sent,
    undelivered: sent - received,
    confirmedUndelivered: confirmedRanges.reduce((missing, [first, last]) => {
      for (let seq = first; seq <= last; seq++) if (!delivered.has(seq)) missing++;
      return missing;
    }, 0),
    errors,
    error: sub.error,
    cpuMicrosPerMessage: cpu.perMessage(sentAtEnd - sentAtStart),
    stalls: stallsBetween(
      await metricsAtStart,
      await metricsAtEnd,
      ownLoop ?? { over25ms: 0, over100ms: 0 },
      ioFull,
    ),
  };
  progress.done(
    `${label}: p50 ${fmtMs(result.latencyMs.p50)} ms, p99 ${fmtMs(result.latencyMs.p99)} ms, p999 ${fmtMs(result.latencyMs.p999)} ms`,
  );
  return result;
}

// ---------------------------------------------------------------------------------------------
// Overload: publishers at full speed, several packs in flight each, nobody consuming.

export interface OverloadOptions {
  readonly publishers: number;
  readonly inflight: number;
  readonly packSize: number;
  readonly bytes: number;
  readonly durationMs: number;
  readonly deadlineMs: number;
  /** A confirm slower than this counts as the broker making the publisher wait. */
  readonly waitThresholdMs: number;
}

export interface OverloadResult {
  readonly publishers: number;
  readonly inflight: number;
  readonly packSize: number;
  readonly bytes: number;
  readonly durationSec: number;
  readonly confirmedMessages: number;
  readonly messagesPerSec: number;
  readonly confirmLatencyMs: Percentiles;
  /** Packs confirmed after more than waitThresholdMs. */
  readonly slowConfirms: number;
  readonly resourceExhausted: number;
  readonly errors: ErrorCounts;
  readonly maxRssBytes: number;
  /**
   * The broker's process.memoryUsage() (from GET /api/status every 500 ms) at the sample with
   * the highest RSS, and the highest write-buffer use seen: where the resident memory is.
   */
  readonly memoryAtPeak: (NodeJS.MemoryUsage & { bufferedBytes: number }) | undefined;
  /** Broker RSS over the run: [seconds since start, bytes], one point per 500 ms. */
  readonly rssSeries: [number, number][];
  /** Confirmed seq ranges, merged. */
  readonly confirmedRanges: [number, number][];
  /** CPU microseconds per confirmed message, per process, over the whole run. */
  readonly cpuMicrosPerMessage: Record<string, number>;
}

export function mergeRanges(ranges: [number, number][]): [number, number][] {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  const out: [number, number][] = [];
  for (const [a, b] of sorted) {
    const lastRange = out[out.length - 1];
    if (lastRange !== undefined && a <= lastRange[1] + 1) lastRange[1] = Math.max(lastRange[1], b);
    else out.push([a, b]);
  }
  return out;
}

export async function runOverload(
  broker: BrokerProcess,
  topic: string,
  o: OverloadOptions,
  label: string,
  pids: Pids = {},
): Promise<OverloadResult> {
  const request = encodePack(topic, o.packSize, o.bytes);
  const clients = Array.from({ length: o.publishers }, () => rawClient(broker.address));
  const latencies = new Samples();
  const errors: ErrorCounts = {};
  const ranges: [number, number][] = [];
  let confirmed = 0;
  let slow = 0;
  broker.resetRss();
  const cpu = new CpuPerMessage(pids);
  cpu.start();
  const start = now();
  const end = start + o.durationMs;
  let memoryAtPeak: (NodeJS.MemoryUsage & { bufferedBytes: number }) | undefined;
  let polling = true;
  const poller = (async () => {
    while (polling) {
      const m = await broker.memoryUsage();
      if (m !== undefined && (memoryAtPeak === undefined || m.memory.rss > memoryAtPeak.rss))
        memoryAtPeak = { ...m.memory, bufferedBytes: m.bufferedBytes };
      await sleep(500);
    }
  })();
  const ticker = setInterval(() => {
    progress.update(
      `${label}: ${fmtInt(confirmed)} confirmed, RSS ${(broker.maxRssBytes / (1 << 20)).toFixed(0)} MiB, ${JSON.stringify(errors)}`,
    );
  }, 200);
  try {
    await Promise.all(
      clients.flatMap((client) =>
        Array.from({ length: o.inflight }, async () => {
          while (now() < end) {
            const t0 = now();
            try {
              const r = await sendPack(client, request, o.deadlineMs);
              const ms = now() - t0;
              latencies.push(ms);
              if (ms > o.waitThresholdMs) slow++;
              confirmed += r.lastSeq - r.firstSeq + 1;
              ranges.push([r.firstSeq, r.lastSeq]);
            } catch (err) {
              countError(errors, err);
              await sleep(50); // back off as a well-behaved client does
            }
          }
        }),
      ),
    );
  } finally {
    cpu.stop();
    clearInterval(ticker);
    polling = false;
    await poller;
    for (const c of clients) c.close();
  }
  const durationSec = (now() - start) / 1000;
  const result: OverloadResult = {
    publishers: o.publishers,
    inflight: o.inflight,
    packSize: o.packSize,
    bytes: o.bytes,
    durationSec,
    confirmedMessages: confirmed,
    messagesPerSec: confirmed / durationSec,
    confirmLatencyMs: percentiles(latencies.values()),
    slowConfirms: slow,
    resourceExhausted: errors.RESOURCE_EXHAUSTED ?? 0,
    errors,
    maxRssBytes: broker.maxRssBytes,
    memoryAtPeak,
    rssSeries: broker.rssSamples
      .filter((x, i) => i % 5 === 0 && x.t >= start - 1000)
      .map((x) => [Math.round(x.t - start) / 1000, x.rssBytes]),
    confirmedRanges: mergeRanges(ranges),
    cpuMicrosPerMessage: cpu.perMessage(confirmed),
  };
  progress.done(
    `${label}: ${fmtInt(confirmed)} confirmed, max RSS ${(result.maxRssBytes / (1 << 20)).toFixed(0)} MiB, errors ${JSON.stringify(errors)}`,
  );
  return result;
}
