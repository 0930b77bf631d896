import assert from "node:assert/strict";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { MessageSchema } from "../../clients/ts/src/gen/nervebus/v1/message_pb.js";
import {
  type BatchConfirm,
  MessageResult_Outcome,
  PublishOpenSchema,
  type PublishRequest,
  PublishRequestSchema,
  type PublishResponse,
} from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import type { Config } from "../../src/config/index.js";
import {
  type BrokerContext,
  type FreshStore,
  type MessageInit,
  type TestClient,
  withBroker,
} from "../support/broker.js";

const text = (d: { data: Uint8Array }) => Buffer.from(d.data).toString();

/** A Publish stream that records what the broker sends and keeps the credit. */
class PublishStream {
  readonly confirms: BatchConfirm[] = [];
  readonly responses: PublishResponse[] = [];
  error: grpc.ServiceError | undefined;
  ended = false;
  credit = { messages: 0, bytes: 0 };
  granted = { messages: 0, bytes: 0 };
  readonly call: grpc.ClientDuplexStream<PublishRequest, PublishResponse>;
  readonly #waiters: (() => void)[] = [];

  constructor(client: TestClient) {
    this.call = client.publisher.publish();
    this.call.on("data", (r: PublishResponse) => {
      this.responses.push(r);
      if (r.opened) {
        this.granted = { messages: r.opened.messages, bytes: Number(r.opened.bytes) };
        this.credit = { ...this.granted };
      }
      if (r.credit) {
        this.credit.messages += r.credit.messages;
        this.credit.bytes += Number(r.credit.bytes);
      }
      this.confirms.push(...r.confirms);
      this.#wake();
    });
    this.call.on("error", (err: grpc.ServiceError) => {
      this.error = err;
      this.ended = true;
      this.#wake();
    });
    this.call.on("status", () => {
      this.ended = true;
      this.#wake();
    });
  }

  open(topic: string, opts: { maxMessages?: number; maxBytes?: number; noConfirms?: boolean } = {}): void {
    this.call.write(
      create(PublishRequestSchema, {
        open: create(PublishOpenSchema, {
          topic,
          maxMessages: opts.maxMessages ?? 0,
          maxBytes: BigInt(opts.maxBytes ?? 0),
          noConfirms: opts.noConfirms ?? false,
        }),
      }),
    );
  }

  /** Sends one batch without looking at the credit. */
  send(messages: (string | MessageInit)[]): void {
    const wire = messages.map((m) =>
      create(MessageSchema, typeof m === "string" ? { data: Buffer.from(m) } : m),
    );
    this.call.write(create(PublishRequestSchema, { messages: wire }));
  }

  /** Waits for credit for `n` messages of `bytes`, then sends them as one batch. */
  async sendWithin(messages: string[]): Promise<void> {
    const bytes = messages.reduce((n, m) => n + Buffer.byteLength(m), 0);
    await this.until(() => this.credit.messages >= messages.length && this.credit.bytes >= bytes, "credit");
    this.credit.messages -= messages.length;
    this.credit.bytes -= bytes;
    this.send(messages);
  }

  async until(predicate: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (this.error && !predicate())
        throw new Error(`stream failed waiting for ${what}: ${this.error.details}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}: ${this.confirms.length} confirms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 200));
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Waits for the stream's end; resolves with its error, if any. */
  async failure(): Promise<grpc.ServiceError | undefined> {
    const deadline = Date.now() + 20_000;
    while (!this.ended && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(this.ended, "the stream ended");
    return this.error;
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }
}

/** All messages of `topic` from the earliest, through a Receive stream. */
async function readAll(client: TestClient, topic: string, count: number): Promise<string[]> {
  const s = client.receive(topic, `check-${Date.now()}`, { maxMessages: 10_000, from: "earliest" });
  await s.until(() => s.deliveries.length >= count, 20_000, `${count} deliveries`);
  const got = s.deliveries.map((d) => [Number(d.seq), text(d)] as const);
  await s.end();
  got.sort((a, b) => a[0] - b[0]);
  assert.deepEqual(
    got.map(([seq]) => seq),
    Array.from({ length: count }, (_, i) => i + 1),
    "seqs 1…n without gaps",
  );
  return got.map(([, t]) => t);
}

/** Publish streams through a real gRPC connection: confirms, order, credit, broken streams, bad input. */
export function publishStreamSuite(kind: string, fresh: FreshStore): void {
  const it = (name: string, fn: (ctx: BrokerContext) => Promise<void>, overrides: Partial<Config> = {}) =>
    test(`${kind}: publish stream: ${name}`, () =>
      withBroker(fresh, `ps_${kind}_${name}`.slice(0, 60), overrides, fn));

  it("confirms every batch in order with SendPack's per-message results, and the log holds the stream's order", async ({
    client,
  }) => {
    const before = await client.publish("s1", ["p1", { data: Buffer.from("p2"), messageId: "dup" }]);
    const s = new PublishStream(client);
    s.open("s1", { maxMessages: 40 });
    await s.until(() => s.granted.messages > 0, "opened");
    assert.equal(s.granted.messages, 40);
    const sent: string[] = [];
    for (let b = 0; b < 30; b++) {
      const batch = Array.from({ length: 7 }, (_, i) => `b${b}-${i}`);
      sent.push(...batch);
      await s.sendWithin(batch);
    }
    // A batch with a message id seen before: a duplicate pointing at the original, as SendPack says.
    await s.until(() => s.credit.messages >= 2, "credit");
    s.send([{ data: Buffer.from("again"), messageId: "dup" }, "last"]);
    sent.push("last");
    s.call.end();
    assert.equal(await s.failure(), undefined, "half-close ends the stream OK");
    assert.deepEqual(
      s.confirms.map((c) => Number(c.batch)),
      Array.from({ length: 31 }, (_, i) => i + 1),
      "one confirm per batch, in batch order",
    );
    let next = Number(before.lastSeq) + 1;
    for (const c of s.confirms.slice(0, 30)) {
      const r = c.result!;
      assert.equal(Number(r.firstSeq), next, `batch ${c.batch} starts where the previous ended`);
      assert.equal(Number(r.lastSeq), next + 6);
      assert.deepEqual(
        r.results.map((x) => [x.outcome, Number(x.seq), x.traceId.length]),
        Array.from({ length: 7 }, (_, i) => [MessageResult_Outcome.APPENDED, next + i, 32]),
      );
      next += 7;
    }
    const dup = s.confirms[30]!.result!;
    assert.deepEqual(
      dup.results.map((x) => [x.outcome, Number(x.seq)]),
      [
        [MessageResult_Outcome.DUPLICATE, 2],
        [MessageResult_Outcome.APPENDED, next],
      ],
    );
    assert.deepEqual([Number(dup.firstSeq), Number(dup.lastSeq)], [next, next]);
    assert.deepEqual(await readAll(client, "s1", next), ["p1", "p2", ...sent]);
  });

  it(
    "credit: the grant is capped by the pack limits, and a batch over the credit left ends the stream with RESOURCE_EXHAUSTED naming both",
    async ({ client }) => {
      const capped = new PublishStream(client);
      capped.open("s2", { maxMessages: 1_000_000, maxBytes: 1 << 30 });
      await capped.until(() => capped.granted.messages > 0, "opened");
      assert.deepEqual(
        capped.granted,
        { messages: 50, bytes: 64 << 10 },
        "lowered to --max-pack-messages/bytes",
      );
      capped.send(Array.from({ length: 51 }, (_, i) => `m${i}`));
      const over = await capped.failure();
      assert.equal(over?.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.match(
        over!.details,
        /batch 1: has 51 messages but the stream's credit left is 50 messages and 65536 bytes \(of 50 and 65536\)/,
      );

      const bytes = new PublishStream(client);
      bytes.open("s2", { maxMessages: 10, maxBytes: 100 });
      await bytes.until(() => bytes.granted.messages > 0, "opened");
      await bytes.sendWithin(["x".repeat(60)]);
      await bytes.until(() => bytes.confirms.length === 1, "confirm");
      // Credit came back with the confirm: 60 bytes fit again, 2 × 60 do not.
      assert.deepEqual(bytes.credit, { messages: 10, bytes: 100 });
      bytes.send(["y".repeat(60), "z".repeat(60)]);
      const err = await bytes.failure();
      assert.equal(err?.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.match(
        err!.details,
        /batch 2: has 2 messages of 120 bytes .* left is 10 messages and 100 bytes \(of 10 and 100\)/,
      );
      assert.deepEqual(
        await readAll(client, "s2", 1),
        ["x".repeat(60)],
        "nothing of the refused batches was appended",
      );
    },
    { maxPackMessages: 50, maxPackBytes: 64 << 10, maxMessageBytes: 32 << 10 },
  );

  it(
    "bad input gets a precise status; batches before it stay confirmed and nothing after it is appended",
    async ({ client }) => {
      const cases: [string, (s: PublishStream) => void, grpc.status, RegExp][] = [
        ["no open", (s) => s.send(["a"]), grpc.status.FAILED_PRECONDITION, /^open: the first request/],
        [
          "second open",
          (s) => {
            s.open("s3");
            s.open("s3");
          },
          grpc.status.FAILED_PRECONDITION,
          /^open: only the first request/,
        ],
        ["bad topic", (s) => s.open("no spaces"), grpc.status.INVALID_ARGUMENT, /^open\.topic: contains " "/],
        [
          "empty batch",
          (s) => {
            s.open("s3");
            s.send([]);
          },
          grpc.status.INVALID_ARGUMENT,
          /^batch 1: messages: a batch needs at least one message/,
        ],
        [
          "bad delay",
          (s) => {
            s.open("s3");
            s.send([{ data: Buffer.from("d"), delay: { seconds: -5n, nanos: 0 } }]);
          },
          grpc.status.INVALID_ARGUMENT,
          /^batch 1: messages\[0\]\.delay: must be between 0 and 7 days/,
        ],
      ];
      for (const [name, act, code, details] of cases) {
        const s = new PublishStream(client);
        act(s);
        const err = await s.failure();
        assert.equal(err?.code, code, name);
        assert.match(err!.details, details, name);
      }
      const s = new PublishStream(client);
      s.open("s3");
      await s.until(() => s.granted.messages > 0, "opened");
      s.send(["ok1", "ok2"]);
      s.send(["ok3", { data: Buffer.alloc(2048) }]);
      s.send(["never"]);
      const err = await s.failure();
      assert.equal(err?.code, grpc.status.INVALID_ARGUMENT);
      assert.match(err!.details, /^batch 2: messages\[1\]: message is 2048 bytes; the limit is 1024/);
      assert.deepEqual(
        s.confirms.map((c) => [Number(c.batch), Number(c.result!.firstSeq), Number(c.result!.lastSeq)]),
        [[1, 1, 2]],
        "the batch read before the bad one is confirmed before the error",
      );
      assert.deepEqual(await readAll(client, "s3", 2), ["ok1", "ok2"]);
    },
    { maxMessageBytes: 1024 },
  );

  it("a broken stream loses no confirmed message: cancelled mid-flow, then the broker restarts", async (ctx) => {
    const s = new PublishStream(ctx.client);
    s.open("s4", { maxMessages: 200 });
    await s.until(() => s.granted.messages > 0, "opened");
    const sent = new Map<number, string[]>();
    for (let b = 1; s.confirms.length < 40; b++) {
      const batch = Array.from({ length: 20 }, (_, i) => `b${b}-${i}`);
      sent.set(b, batch);
      await s.sendWithin(batch);
    }
    // Batches still in flight as the stream goes: their outcome is unknown, the confirmed are durable.
    s.call.cancel();
    const confirmed = s.confirms.map((c) => ({ batch: Number(c.batch), first: Number(c.result!.firstSeq) }));
    await ctx.restart();
    const stats = await ctx.client.adminCall("getStats", { topic: "s4" });
    const last = Number(stats.topic!.lastSeq);
    const log = await readAll(ctx.client, "s4", last);
    for (const c of confirmed) {
      assert.deepEqual(
        log.slice(c.first - 1, c.first - 1 + 20),
        sent.get(c.batch),
        `batch ${c.batch} is in the log`,
      );
    }
    assert.ok(last >= confirmed.length * 20);
  });

  it("shutdown ends an open stream UNAVAILABLE, its confirmed batches durable after the restart", async (ctx) => {
    const s = new PublishStream(ctx.client);
    s.open("s6", { maxMessages: 100 });
    await s.until(() => s.granted.messages > 0, "opened");
    const sent = new Map<number, string[]>();
    for (let b = 1; b <= 5; b++) {
      const batch = Array.from({ length: 10 }, (_, i) => `b${b}-${i}`);
      sent.set(b, batch);
      await s.sendWithin(batch);
    }
    await s.until(() => s.confirms.length === 5, "confirms");
    s.send(["late"]);
    const stopping = ctx.bus.stop();
    const err = await s.failure();
    assert.equal(err?.code, grpc.status.UNAVAILABLE);
    assert.match(err!.details, /shutting down/);
    await stopping;
    const confirmed = s.confirms.length;
    await ctx.restart();
    const last = Number((await ctx.client.adminCall("getStats", { topic: "s6" })).topic!.lastSeq);
    assert.ok(
      last >= 50 && last <= 51,
      `the 5 confirmed batches, and the late one or not (last seq ${last})`,
    );
    const log = await readAll(ctx.client, "s6", last);
    assert.deepEqual(log.slice(0, 50), [...sent.values()].flat());
    if (confirmed === 6) assert.equal(log[50], "late", "a confirmed late batch is in the log");
  });

  it("fire and forget on an ephemeral topic: no confirms, credit comes back, connected consumers get every message", async ({
    client,
  }) => {
    await client.adminCall("createTopic", { topic: { name: "s5", ephemeral: true } });
    const sub = client.receive("s5", "live", { maxMessages: 10_000, from: "latest" });
    await sub.until(() => sub.responses.some((r) => r.subscribed !== undefined));
    const s = new PublishStream(client);
    s.open("s5", { maxMessages: 10, noConfirms: true });
    await s.until(() => s.granted.messages > 0, "opened");
    const sent: string[] = [];
    for (let b = 0; b < 50; b++) {
      const batch = [`e${b}a`, `e${b}b`];
      sent.push(...batch);
      await s.sendWithin(batch);
    }
    s.call.end();
    assert.equal(await s.failure(), undefined);
    assert.equal(s.confirms.length, 0, "no confirms");
    assert.deepEqual(s.credit, s.granted, "all credit came back");
    await sub.until(() => sub.deliveries.length >= sent.length);
    assert.deepEqual(sub.deliveries.map(text), sent);
    await sub.end();
  });

  it(
    "without auto-create, a stream on a missing topic ends NOT_FOUND at its first batch",
    async ({ client }) => {
      const s = new PublishStream(client);
      s.open("missing");
      s.send(["a"]);
      const err = await s.failure();
      assert.equal(err?.code, grpc.status.NOT_FOUND);
      assert.match(err!.details, /^batch 1: .*missing/);
    },
    { autoCreate: false },
  );
}
