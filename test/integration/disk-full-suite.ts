import assert from "node:assert/strict";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import {
  MessageResult_Outcome,
  type SendPackResponse,
} from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import { StartPoint } from "../../clients/ts/src/gen/nervebus/v1/subscriber_pb.js";
import type { Config } from "../../src/config/index.js";
import { type MessageInit, seqsOf, startBroker, TestClient } from "../support/broker.js";

// What the broker does when its store's disk fills up (README "When the disk fills up"), on a
// real store that runs out of space (disk-full-sqlite.test.ts: a tmpfs). MariaDB is not run
// here: in the broker's transaction shape it aborts when its space runs out (README).

const PAYLOAD = 1024;
const PACK = 100;
/** Generous: a pack that waited for it (instead of a prompt refusal) would fail the test. */
const DEADLINE_MS = 120_000;

/** A store that is about to run out of space, and how to free some. */
export interface FullDisk {
  /** The broker's --store. */
  readonly store: string;
  /** The file or HOST:PORT/DATABASE the broker's errors must name. */
  readonly place: string;
  readonly overrides?: Partial<Config>;
  /**
   * The callers of packs that had seqs when the disk filled give up before space is freed (the
   * broker's confirm timeout is short): they must get UNAVAILABLE saying the pack stays queued,
   * and their retry with the same message ids, once there is room, gets its seqs (no copies).
   * Otherwise they wait, and get OK once space is freed.
   */
  readonly callersGiveUp?: boolean;
  /** Takes every byte still left, once publishes are refused, so small writes fail for certain too. */
  exhaust(): void;
  /** Frees space again (drops what was made for it before the broker filled the disk). */
  free(): Promise<void>;
}

function grpcCode(err: unknown): grpc.status | undefined {
  return (err as grpc.ServiceError | undefined)?.code;
}

function payload(tag: string): string {
  return tag.padEnd(PAYLOAD, ".");
}

/**
 * Publishes, retrying as a client does (same message ids) while the pack is refused for lack
 * of space or its outcome is unknown: right after space is freed, the store is still full until
 * its retried insert commits, and with a short confirm timeout a retry that finds the queued
 * original may give up again before that original is written (seen on a busy CI machine).
 */
async function publishOnceAccepted(client: TestClient, messages: MessageInit[]): Promise<SendPackResponse> {
  const started = Date.now();
  for (;;) {
    try {
      return await client.publish("fill", messages, DEADLINE_MS);
    } catch (e) {
      const code = grpcCode(e);
      assert.ok(
        code === grpc.status.RESOURCE_EXHAUSTED ||
          (code === grpc.status.UNAVAILABLE && /outcome unknown/.test(String(e))),
        String(e),
      );
      // The retried insert runs at least every 2 s; a state nothing retries lapses in 10 s.
      assert.ok(Date.now() - started < 60_000, `not accepted 60 s after space was freed: ${String(e)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** A pack of messages whose ids are their tags, so a retry is recognised. */
function messagesOf(tags: readonly string[]): MessageInit[] {
  return tags.map((tag) => ({ data: Buffer.from(payload(tag)), messageId: tag }));
}

async function httpText(address: string, path: string): Promise<{ status: number; body: string }> {
  const r = await fetch(`http://${address}${path}`);
  return { status: r.status, body: await r.text() };
}

/** The value of `nervebus_store_disk_full` for `place`, as /metrics shows it. */
async function diskFullGauge(address: string, place: string): Promise<number | undefined> {
  const { body } = await httpText(address, "/metrics");
  const line = body.split("\n").find((l) => l.startsWith("nervebus_store_disk_full{") && l.includes(place));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

/**
 * Reads the topic from seq 1 on a subscription, without acking, until `upTo` at least; returns
 * seq → payload. The seqs delivered must be 1, 2, 3 … without a gap, each once.
 */
async function readAll(
  client: TestClient,
  topic: string,
  sub: string,
  upTo: number,
): Promise<Map<number, string>> {
  const stream = client.receive(topic, sub, { maxMessages: 100_000, from: "earliest" });
  await stream.until(() => stream.deliveries.length >= upTo, 60_000, `${upTo} deliveries`);
  const got = new Map<number, string>();
  for (const d of stream.deliveries) got.set(Number(d.seq), Buffer.from(d.data).toString());
  const seqs = seqsOf(stream.deliveries);
  assert.deepEqual(
    seqs,
    Array.from({ length: seqs.length }, (_, i) => i + 1),
    "seqs 1..watermark, no gap, each once",
  );
  stream.cancel();
  return got;
}

/**
 * Fills the disk with published packs until SendPack is refused (RESOURCE_EXHAUSTED, promptly,
 * naming the place), checks that every confirmed message is readable without a seq gap and
 * that /healthz, /metrics and /api/status say so, frees space, and checks that the packs that
 * had seqs are written and confirmed and publishing is accepted again.
 */
export async function diskFullScenario(disk: FullDisk): Promise<void> {
  const dbPath = disk.place;
  const bus = await startBroker(disk.store, { confirmTimeoutMs: DEADLINE_MS, ...disk.overrides });
  const client = new TestClient(bus.address);
  try {
    // Made while there is room: a subscription that reads everything back later.
    await client.adminCall("createTopic", { topic: { name: "fill" } });
    await client.adminCall("createSubscription", {
      subscription: { topic: "fill", name: "check" },
      start: { case: "startPoint", value: StartPoint.EARLIEST },
    });

    // Four packs in flight at a time until one is refused. Packs that had seqs when the disk
    // filled stay pending: they may only be answered once written (or at their deadline).
    const confirmed = new Map<number, string>();
    const stuck: { tags: string[]; answer: Promise<SendPackResponse | grpc.ServiceError> }[] = [];
    let refusal: grpc.ServiceError | undefined;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (refusal === undefined) {
        const tags = Array.from({ length: PACK }, (_, i) => `m${next}-${i}`);
        next++;
        const answer = client
          .publish("fill", messagesOf(tags), DEADLINE_MS)
          .catch((e: grpc.ServiceError) => e);
        // Refused or confirmed promptly, or stuck behind the full disk: then go on without it.
        const first = await Promise.race([
          answer,
          new Promise<"slow">((r) => setTimeout(() => r("slow"), 1000)),
        ]);
        if (first === "slow") {
          stuck.push({ tags, answer });
          continue;
        }
        if (first instanceof Error) {
          assert.equal(
            grpcCode(first),
            grpc.status.RESOURCE_EXHAUSTED,
            `a pack failed otherwise: ${first.message}`,
          );
          refusal = first;
          return;
        }
        tags.forEach((tag, i) => {
          confirmed.set(Number(first.firstSeq) + i, payload(tag));
        });
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    assert.ok(refusal !== undefined);
    assert.match(refusal.details, /out of disk space/);
    assert.ok(refusal.details.includes(dbPath), `the refusal names the file: ${refusal.details}`);
    assert.ok(confirmed.size > 0, "some packs were confirmed before the disk filled");
    assert.ok(stuck.length > 0, "a pack had seqs when the disk filled");

    // A new pack now: refused at once (a wait would end in DEADLINE_EXCEEDED or UNAVAILABLE).
    const again = await client.publish("fill", [payload("late")], DEADLINE_MS).then(
      () => assert.fail("a pack was accepted on a full disk"),
      (e: grpc.ServiceError) => e,
    );
    assert.equal(grpcCode(again), grpc.status.RESOURCE_EXHAUSTED, again.message);

    // Health and metrics say so; the broker still serves.
    const health = await httpText(bus.httpAddress!, "/healthz");
    assert.equal(health.status, 200);
    assert.match(health.body, /^ok\nstore out of disk space since .*: publishes are refused\n$/);
    assert.equal(await diskFullGauge(bus.httpAddress!, dbPath), 1);
    const status = JSON.parse((await httpText(bus.httpAddress!, "/api/status")).body) as {
      broker: { storeSpace: { place: string; full: boolean }[] };
    };
    assert.deepEqual(
      status.broker.storeSpace.map((s) => [s.place, s.full]),
      [[dbPath, true]],
    );

    // A delayed message is refused as well (its schedule entry is stored too).
    const delayed = await client
      .publish("fill", [{ data: Buffer.from("later"), deliverAt: timestampFromMs(Date.now() + 60_000) }])
      .then(
        () => assert.fail("a delayed message was accepted on a full disk"),
        (e: grpc.ServiceError) => e,
      );
    assert.equal(grpcCode(delayed), grpc.status.RESOURCE_EXHAUSTED, delayed.message);

    // Every byte gone. Catalog writes go on while SQLite fits them into the log space a failed
    // insert left (a few pages each), then fail with an answer that names the disk, and harm
    // nothing else.
    disk.exhaust();
    let created = 0;
    let catalogError: grpc.ServiceError | undefined;
    while (catalogError === undefined && created < 1000) {
      await client.adminCall("createTopic", { topic: { name: `other-${created}` } }).then(
        () => created++,
        (e: grpc.ServiceError) => {
          catalogError = e;
        },
      );
    }
    assert.ok(catalogError !== undefined, `${created} topics were created on a full disk`);
    assert.equal(grpcCode(catalogError), grpc.status.RESOURCE_EXHAUSTED, catalogError.message);
    assert.match(catalogError.details, /out of disk space/);
    assert.ok(catalogError.details.includes(dbPath), catalogError.details);

    // Reads go on: everything confirmed is there, under the watermark, without a gap.
    const watermark = Math.max(...confirmed.keys());
    const before = await readAll(client, "fill", "check", watermark);
    for (const [seq, data] of confirmed) assert.equal(before.get(seq), data, `seq ${seq}`);

    // Callers that give up while the disk is full learn that their pack stays queued. (A pack
    // counted as waiting may also have been answered late on a busy machine, confirmed before
    // the disk filled or refused; the one whose insert hit the full disk cannot have been.)
    if (disk.callersGiveUp === true) {
      let gaveUp = 0;
      for (const answer of await Promise.all(stuck.map((p) => p.answer))) {
        if (!(answer instanceof Error) || grpcCode(answer) === grpc.status.RESOURCE_EXHAUSTED) continue;
        assert.equal(grpcCode(answer), grpc.status.UNAVAILABLE, answer.message);
        assert.match(answer.details, /outcome unknown.*out of disk space.*stays queued/);
        gaveUp++;
      }
      assert.ok(gaveUp > 0, "the caller of a pack that had seqs when the disk filled gave up");
    }

    // Space again: the packs that had seqs are written and confirmed (or, asked again with the
    // same message ids, answer with their seqs), and packs are accepted.
    await disk.free();
    for (const p of stuck) {
      let answer = await p.answer;
      // Refused (only late, on a busy machine): it never had seqs.
      if (answer instanceof Error && grpcCode(answer) === grpc.status.RESOURCE_EXHAUSTED) continue;
      if (answer instanceof Error) {
        answer = await publishOnceAccepted(client, messagesOf(p.tags));
        assert.deepEqual(
          answer.results.map((r) => r.outcome),
          p.tags.map(() => MessageResult_Outcome.DUPLICATE),
          "the retry found the queued pack",
        );
      }
      const results = answer.results;
      p.tags.forEach((tag, i) => {
        confirmed.set(Number(results[i]!.seq), payload(tag));
      });
    }
    // The packs that had seqs are written, so the store has taken messages again: no refusal.
    const after = await client.publish("fill", [payload("after")], DEADLINE_MS);
    confirmed.set(Number(after.firstSeq), payload("after"));
    const last = Math.max(...confirmed.keys());
    assert.equal(confirmed.size, last, "every seq up to the last one belongs to a confirmed pack");
    const all = await readAll(client, "fill", "after", last);
    for (const [seq, data] of confirmed) assert.equal(all.get(seq), data, `seq ${seq}`);

    assert.equal((await httpText(bus.httpAddress!, "/healthz")).body, "ok\n");
    assert.equal(await diskFullGauge(bus.httpAddress!, dbPath), 0);
  } finally {
    client.close();
    await bus.stop();
  }
}
