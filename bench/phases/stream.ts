import { create, toBinary } from "@bufbuild/protobuf";
import type * as grpc from "@grpc/grpc-js";
import {
  PublishOpenSchema,
  PublishRequestSchema,
} from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import { WireReader } from "../../src/wire/index.js";
import { CpuPerMessage } from "../lib/cpu.js";
import { fmtInt, fmtMs, now, percentiles, progress, Samples } from "../lib/stats.js";
import { encodePack, rawClient, statusName } from "../lib/wire.js";
import { runPublish } from "../scenarios.js";
import type { PhaseContext } from "./phase-context.js";
import type { StreamPhaseResult } from "./stream-result.js";

const PUBLISH = "/nervebus.v1.PublisherService/Publish";
const identity = (b: Buffer): Buffer => b;

/** Confirms (batch number, first and last seq) and returned credit of one PublishResponse. */
function decodeResponse(buf: Buffer): {
  confirms: [number, number, number][];
  credit: number;
  opened: number;
} {
  const out = { confirms: [] as [number, number, number][], credit: 0, opened: 0 };
  const r = new WireReader(buf);
  while (!r.done) {
    const tag = r.varint();
    if ((tag & 7) !== 2) {
      r.skip(tag & 7);
      continue;
    }
    const end = r.varint() + r.pos;
    const field = tag >>> 3;
    if (field === 1 || field === 3) {
      while (r.pos < end) {
        const t = r.varint();
        if ((t & 7) !== 0) {
          r.skip(t & 7);
          continue;
        }
        const v = r.varint();
        if (t >>> 3 === 1) {
          if (field === 1) out.opened = v;
          else out.credit = v;
        }
      }
    } else if (field === 2) {
      let batch = 0;
      const seqs = [0, 0];
      while (r.pos < end) {
        const t = r.varint();
        if (t >>> 3 === 1 && (t & 7) === 0) batch = r.varint();
        else if (t >>> 3 === 2 && (t & 7) === 2) {
          const e = r.varint() + r.pos;
          while (r.pos < e) {
            const u = r.varint();
            if ((u & 7) === 0 && (u >>> 3 === 1 || u >>> 3 === 2)) seqs[(u >>> 3) - 1] = r.varint();
            else r.skip(u & 7);
          }
        } else r.skip(t & 7);
      }
      out.confirms.push([batch, seqs[0]!, seqs[1]!]);
    }
    r.pos = end;
  }
  return out;
}

/**
 * `publishers` Publish streams, each sending batches of `batch` messages as fast as its credit
 * allows; latency is from a batch's send to its confirm.
 */
async function runStream(
  address: string,
  topic: string,
  o: {
    publishers: number;
    batch: number;
    credit: number;
    bytes: number;
    durationMs: number;
    warmupMs: number;
  },
  label: string,
  pids: Record<string, number | undefined>,
): Promise<StreamPhaseResult> {
  // A SendPackRequest without a topic is a PublishRequest carrying one batch (field 2 in both).
  const batchBytes = encodePack("", o.batch, o.bytes);
  const open = Buffer.from(
    toBinary(
      PublishRequestSchema,
      create(PublishRequestSchema, { open: create(PublishOpenSchema, { topic, maxMessages: o.credit }) }),
    ),
  );
  const latencies = new Samples();
  const errors: Record<string, number> = {};
  let seqsOk = true;
  let confirmed = 0;
  const start = now();
  const measureFrom = start + o.warmupMs;
  const end = measureFrom + o.durationMs;
  const cpu = new CpuPerMessage(pids);
  const cpuTimers = [
    setTimeout(() => cpu.start(), o.warmupMs),
    setTimeout(() => cpu.stop(), o.warmupMs + o.durationMs),
  ];
  const clients = Array.from({ length: o.publishers }, () => rawClient(address));
  try {
    await Promise.all(
      clients.map(
        (client) =>
          new Promise<void>((resolve) => {
            const call = client.makeBidiStreamRequest(PUBLISH, identity, identity) as grpc.ClientDuplexStream<
              Buffer,
              Buffer
            >;
            const sentAt: number[] = [];
            let credit = 0;
            let sent = 0;
            let lastSeq = 0;
            let stopped = false;
            const pump = () => {
              while (!stopped && credit >= o.batch) {
                if (now() >= end) {
                  stopped = true;
                  call.end();
                  return;
                }
                credit -= o.batch;
                sentAt[++sent] = now();
                if (!call.write(batchBytes)) return;
              }
            };
            call.on("data", (buf: Buffer) => {
              const r = decodeResponse(buf);
              const t1 = now();
              for (const [batch, first, last] of r.confirms) {
                if (last - first + 1 !== o.batch || first <= lastSeq) seqsOk = false;
                lastSeq = last;
                const t0 = sentAt[batch]!;
                if (t1 >= measureFrom && t1 <= end) confirmed += o.batch;
                if (t0 >= measureFrom && t1 <= end) latencies.push(t1 - t0);
              }
              credit += r.opened + r.credit;
              pump();
            });
            call.on("drain", pump);
            call.on("error", (err) => {
              const name = statusName(err);
              errors[name] = (errors[name] ?? 0) + 1;
              resolve();
            });
            call.on("end", resolve);
            call.write(open);
          }),
      ),
    );
  } finally {
    for (const t of cpuTimers) clearTimeout(t);
    cpu.stop();
    for (const c of clients) c.close();
  }
  const rate = confirmed / (o.durationMs / 1000);
  const result: StreamPhaseResult = {
    mode: "stream",
    publishers: o.publishers,
    batch: o.batch,
    credit: o.credit,
    bytes: o.bytes,
    messagesPerSec: rate,
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

/**
 * The stream runs, [batch, credit in messages]: batches of 1000 with credit for two (as a SendPack
 * publisher with two packs out), batches of 100 with credit for 1000 (the messages in flight of a
 * SendPack publisher with one pack out), and fewer messages in flight per stream, batches of 100
 * and 250 with credit 500: a quiet machine gave batch 100 credit 1000 more msg/s than SendPack at
 * about its p99, and batch 1000 credit 2000 the most msg/s at a higher p99 (each stream's queue of
 * unconfirmed messages is what its latency waits behind).
 */
const STREAM_RUNS: readonly [number, number][] = [
  [1000, 2000],
  [100, 1000],
  [100, 500],
  [250, 500],
];

/**
 * Streaming publish against SendPack on one broker (first --shards, first --sizes), same run:
 * SendPack packs of 1000 (--publishers calls, one pack in flight each), then as many Publish
 * streams for each of STREAM_RUNS. `--only stream`; not part of the default run.
 */
export async function streamPhase(ctx: PhaseContext): Promise<void> {
  const { opt, store } = ctx;
  const shards = opt.nums("shards")[0]!;
  const bytes = opt.nums("sizes")[0]!;
  const publishers = opt.num("publishers");
  const timing = { durationMs: opt.num("duration") * 1000, warmupMs: opt.num("warmup") * 1000 };
  const out: StreamPhaseResult[] = [];
  await ctx.phase(
    "stream publish",
    (1 + STREAM_RUNS.length) * (opt.num("duration") + opt.num("warmup") + 0.5) + 2,
    async () => {
      const b = await ctx.startBroker(await ctx.freshStore("stream"), { shards });
      try {
        const pack = await runPublish(
          b.address,
          "stream-sendpack",
          { publishers, packSize: 1000, bytes, deadlineMs: 30_000, ...timing },
          `[${store}] SendPack packs of 1000, ${publishers} publishers`,
          ctx.pidsOf(b),
        );
        out.push({ mode: "sendpack", batch: 1000, credit: 0, ...pack });
        for (const [batch, credit] of STREAM_RUNS) {
          out.push(
            await runStream(
              b.address,
              `stream-${batch}-${credit}`,
              { publishers, batch, credit, bytes, ...timing },
              `[${store}] Publish streams, batches of ${batch}, credit ${credit}, ${publishers} streams`,
              ctx.pidsOf(b),
            ),
          );
        }
      } finally {
        await ctx.stopBroker(b, "stream publish");
      }
    },
  );
  ctx.results.stream = out;
}
