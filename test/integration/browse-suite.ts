import assert from "node:assert/strict";
import { test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { MessageDelivery_State } from "../../clients/ts/src/gen/nervebus/v1/admin_pb.js";
import { StartPoint } from "../../clients/ts/src/gen/nervebus/v1/subscriber_pb.js";
import { openStore } from "../../src/store/index.js";
import { type FreshStore, quietLog, seqsOf, startBroker, TestClient } from "../support/broker.js";

const text = (d: { data: Uint8Array }) => Buffer.from(d.data).toString();
const code = (c: grpc.status, detail: RegExp) => (err: grpc.ServiceError) =>
  err.code === c && detail.test(err.details);
const HOUR = { seconds: 3600n, nanos: 0 };

/**
 * Creates `name` as a format-1 topic (a row per message, as brokers before format 2 wrote),
 * straight in the store before a broker opens it.
 */
async function createFormat1Topic(url: string, name: string): Promise<void> {
  const store = await openStore(url, { mysqlPoolSize: 1, mysqlAllowUnsafeDurability: false, log: quietLog });
  try {
    const config = { retentionMs: 0, retentionBytes: 0, dedupWindowMs: 120_000, ephemeral: false };
    await store.ensureTopic(name, { shards: 2, config, format: 1 });
  } finally {
    await store.close();
  }
}

/** Each topic's log format, as the catalog has it. */
async function topicFormats(url: string): Promise<Record<string, number>> {
  const store = await openStore(url, { mysqlPoolSize: 1, mysqlAllowUnsafeDurability: false, log: quietLog });
  try {
    return Object.fromEntries((await store.listTopics()).map((t) => [t.name, t.format]));
  } finally {
    await store.close();
  }
}

/**
 * The message browser (AdminService.ListMessages / GetMessage) through real gRPC, on a format-1
 * and a format-2 topic of the same store: every filter, paging, the bounds, and each
 * subscription's deliveries and acks, across a restart. Browsing consumes nothing.
 */
export function browseSuite(kind: string, fresh: FreshStore): void {
  test(`${kind}: the message browser finds messages by seq, time, key, attribute, id and trace, and shows their deliveries`, async () => {
    const url = await fresh(`${kind}_browse`);
    await createFormat1Topic(url, "old");
    let bus = await startBroker(url);
    let client = new TestClient(bus.address);
    try {
      const restart = async (whileStopped = async () => {}) => {
        client.close();
        await bus.stop();
        await whileStopped();
        bus = await startBroker(url);
        client = new TestClient(bus.address);
      };
      const traces = new Map<string, string[]>();
      for (const topic of ["old", "new"]) {
        // 30 messages in three packs: keys k0–k2 in turn, attribute color on every fifth.
        for (let p = 0; p < 3; p++) {
          const r = await client.publish(
            topic,
            Array.from({ length: 10 }, (_, j) => {
              const i = p * 10 + j;
              return {
                data: Buffer.from(`m${i + 1}`),
                orderingKey: `k${i % 3}`,
                messageId: `id-${i + 1}`,
                attributes: i % 5 === 0 ? { color: "red" } : { color: "blue" },
              };
            }),
          );
          traces.set(topic, [...(traces.get(topic) ?? []), ...r.results.map((x) => x.traceId)]);
        }
      }
      // A new broker has nothing in its tail cache: every search below reads the store's rows
      // (format 1) and runs (format 2).
      await restart(async () => assert.deepEqual(await topicFormats(url), { new: 2, old: 1 }));
      for (const topic of ["old", "new"]) {
        const list = (req: Record<string, unknown>) => client.adminCall("listMessages", { topic, ...req });

        const all = await list({});
        assert.deepEqual(seqsOf(all.messages.map((m) => m.message!)), range(1, 30), `${topic}: everything`);
        assert.equal(all.nextSeq, 0n);
        const first = all.messages[0]!.message!;
        assert.equal(text(first), "m1");
        assert.equal(first.orderingKey, "k0");
        assert.equal(first.messageId, "id-1");
        assert.equal(first.attributes.color, "red");
        assert.equal(first.traceId, traces.get(topic)![0]);
        assert.equal(first.attempt, 0, "browsing delivers nothing");

        const seqs = async (req: Record<string, unknown>) =>
          seqsOf((await list(req)).messages.map((m) => m.message!));
        assert.deepEqual(await seqs({ fromSeq: 5n, toSeq: 8n }), [5, 6, 7, 8], `${topic}: seq range`);
        assert.deepEqual(await seqs({ orderingKey: "k1" }), [2, 5, 8, 11, 14, 17, 20, 23, 26, 29]);
        assert.deepEqual(await seqs({ attributes: { color: "red" } }), [1, 6, 11, 16, 21, 26]);
        assert.deepEqual(await seqs({ attributes: { color: "red" }, orderingKey: "k2" }), [6, 21]);
        assert.deepEqual(await seqs({ messageId: "id-17" }), [17]);
        assert.deepEqual(
          await seqs({ traceId: traces.get(topic)![22]!.toUpperCase() }),
          [23],
          "trace ids in any case",
        );
        assert.deepEqual(await seqs({ attributes: { color: "green" } }), []);
        // Time: from the publish time of seq 11 (the second pack) to that of seq 20.
        const t11 = all.messages[10]!.message!.publishTime!;
        const t20 = all.messages[19]!.message!.publishTime!;
        // Publish times rise with seqs: the answer is exactly the messages published in between.
        const ms = (t: { seconds: bigint; nanos: number }) =>
          Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6);
        const within = all.messages
          .filter((m) => ms(m.message!.publishTime!) >= ms(t11) && ms(m.message!.publishTime!) <= ms(t20))
          .map((m) => Number(m.message!.seq));
        assert.deepEqual(await seqs({ fromTime: t11, toTime: t20 }), within, `${topic}: time range`);
        assert.ok(within.includes(11) && within.includes(20));

        // Paging: page_size bounds the answer, next_seq goes on; scan_limit bounds the examined range.
        const p1 = await list({ pageSize: 4, orderingKey: "k0" });
        assert.deepEqual(seqsOf(p1.messages.map((m) => m.message!)), [1, 4, 7, 10]);
        assert.equal(p1.nextSeq, 11n);
        const p2 = await list({ pageSize: 4, orderingKey: "k0", fromSeq: p1.nextSeq });
        assert.deepEqual(seqsOf(p2.messages.map((m) => m.message!)), [13, 16, 19, 22]);
        const scan = await list({ scanLimit: 10, attributes: { color: "red" } });
        assert.deepEqual(seqsOf(scan.messages.map((m) => m.message!)), [1, 6]);
        assert.equal(scan.nextSeq, 11n, "the scan stopped at its limit and says where to go on");
        assert.equal(scan.scannedThrough, 10n);
      }

      // The bounds: a clear INVALID_ARGUMENT naming the field and the limit.
      await assert.rejects(
        client.adminCall("listMessages", { topic: "new", scanLimit: 100_001 }),
        code(grpc.status.INVALID_ARGUMENT, /scan_limit: one call examines at most 100000/),
      );
      await assert.rejects(
        client.adminCall("listMessages", { topic: "new", pageSize: 1001 }),
        code(grpc.status.INVALID_ARGUMENT, /page_size: must be 1–1000/),
      );
      await assert.rejects(
        client.adminCall("listMessages", { topic: "new", traceId: "xyz" }),
        code(grpc.status.INVALID_ARGUMENT, /trace_id/),
      );
      await assert.rejects(
        client.adminCall("getMessage", { topic: "new", seq: 31n }),
        code(grpc.status.NOT_FOUND, /never published/),
      );
      await assert.rejects(
        client.adminCall("listMessages", { topic: "nope" }),
        code(grpc.status.NOT_FOUND, /does not exist/),
      );

      // Deliveries: on "work", seq 1 acked, 2 nacked for an hour, 3 leased; "idle" got nothing.
      for (const topic of ["old", "new"]) {
        for (const name of ["work", "idle"])
          await client.adminCall("createSubscription", {
            subscription: { topic, name },
            start: { case: "startPoint", value: StartPoint.EARLIEST },
          });
        const s = client.receive(topic, "work", { maxMessages: 3, confirmAcks: true });
        await s.until(() => s.deliveries.length >= 3);
        s.send({ ackSeqs: [1n], nacks: [{ seq: 2n, delay: HOUR }] });
        await s.until(() => s.responses.some((r) => r.ackResults !== undefined));
        const states = async (seq: number) => {
          const r = await client.adminCall("getMessage", { topic, seq: BigInt(seq) });
          return Object.fromEntries(r.message!.deliveries.map((d) => [d.subscription, d]));
        };
        const d1 = await states(1);
        assert.equal(d1.work!.state, MessageDelivery_State.ACKED, `${topic}: seq 1 acked`);
        assert.equal(d1.idle!.state, MessageDelivery_State.NOT_DELIVERED);
        const d2 = await states(2);
        assert.equal(d2.work!.state, MessageDelivery_State.WAITING_REDELIVERY);
        assert.equal(d2.work!.attempts, 1);
        assert.ok(d2.work!.notBefore !== undefined);
        const d3 = await states(3);
        assert.equal(d3.work!.state, MessageDelivery_State.LEASED);
        assert.equal(d3.work!.attempts, 1);
        assert.ok(d3.work!.consumer !== "" && d3.work!.leaseDeadline !== undefined);
        // With ordering, seq 4 (key k0, like seq 1) waits behind seq 1 while that is unacked.
        await client.adminCall("createSubscription", {
          subscription: { topic, name: "ordered", ordering: true },
          start: { case: "startPoint", value: StartPoint.EARLIEST },
        });
        const o = client.receive(topic, "ordered", { maxMessages: 10 });
        await o.until(() => o.deliveries.length >= 3);
        assert.deepEqual(seqsOf(o.deliveries), [1, 2, 3], "one per key while each key is unacked");
        assert.equal((await states(4)).ordered!.state, MessageDelivery_State.HELD, `${topic}: seq 4 held`);
        assert.equal((await states(1)).ordered!.state, MessageDelivery_State.LEASED);
        // From a trace id: the message and its deliveries in one call.
        const byTrace = await client.adminCall("listMessages", {
          topic,
          traceId: (await client.adminCall("getMessage", { topic, seq: 2n })).message!.message!.traceId,
          includeDeliveries: true,
        });
        assert.deepEqual(seqsOf(byTrace.messages.map((m) => m.message!)), [2]);
        assert.deepEqual(
          byTrace.messages[0]!.deliveries.map((d) => [d.subscription, d.state]),
          [
            ["idle", MessageDelivery_State.NOT_DELIVERED],
            ["ordered", MessageDelivery_State.LEASED],
            ["work", MessageDelivery_State.WAITING_REDELIVERY],
          ],
        );
        await o.end();
        await s.end();
      }

      // Across a restart the persisted state says the same; browsing moved nothing.
      await restart();
      for (const topic of ["old", "new"]) {
        const r = await client.adminCall("listMessages", { topic, toSeq: 2n, includeDeliveries: true });
        const work = r.messages.map((m) => m.deliveries.find((d) => d.subscription === "work")!);
        assert.equal(work[0]!.state, MessageDelivery_State.ACKED);
        assert.equal(work[1]!.state, MessageDelivery_State.WAITING_REDELIVERY);
        assert.equal(work[1]!.attempts, 1);
        const idle = client.receive(topic, "idle", { maxMessages: 100 });
        await idle.until(() => idle.deliveries.length >= 30);
        assert.deepEqual(seqsOf(idle.deliveries), range(1, 30), `${topic}: browsing consumed nothing`);
        assert.deepEqual(
          idle.deliveries.map((d) => d.attempt),
          Array(30).fill(1),
        );
        await idle.end();
      }
    } finally {
      client.close();
      await bus.stop();
    }
  });

  // Defect: a message whose dead-lettering had finished read STATE_ACKED, and after a restart
  // nothing stored told the two apart.
  test(`${kind}: a dead-lettered message shows as dead-lettered with its topic, also after a restart`, async () => {
    const url = await fresh(`${kind}_browse_dead`);
    let bus = await startBroker(url);
    let client = new TestClient(bus.address);
    const restart = async () => {
      client.close();
      await bus.stop();
      bus = await startBroker(url);
      client = new TestClient(bus.address);
    };
    const zero = { seconds: 0n, nanos: 0 };
    const on = async (seq: number, sub: string) => {
      const r = await client.adminCall("getMessage", { topic: "t", seq: BigInt(seq) });
      return r.message!.deliveries.find((d) => d.subscription === sub)!;
    };
    /** The state once the message is settled (dead-lettering or an ack finished). */
    const settled = async (seq: number, sub: string) => {
      for (let tries = 0; ; tries++) {
        const d = await on(seq, sub);
        if (d.state === MessageDelivery_State.ACKED || d.state === MessageDelivery_State.DEAD_LETTERED)
          return d;
        if (tries > 1000)
          assert.fail(`seq ${seq} on ${sub} never settled: ${MessageDelivery_State[d.state]}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    try {
      await client.adminCall("createTopic", { topic: { name: "t" } });
      for (const [name, extra] of [
        ["w", { maxDeliveryAttempts: 2, deadLetterTopic: "t.dlq", minBackoff: zero, maxBackoff: zero }],
        ["drop", {}],
      ] as const)
        await client.adminCall("createSubscription", {
          subscription: { topic: "t", name, ...extra },
          start: { case: "startPoint", value: StartPoint.EARLIEST },
        });
      await client.publish("t", ["poison", "fine"]);
      // "w": seq 1 nacked until out of attempts, seq 2 acked. "drop" (no dead-letter topic):
      // seq 1 terminated, so dropped.
      const w = client.receive("t", "w", { maxMessages: 10 });
      await w.until(() => w.deliveries.length >= 2);
      w.ack([2n]);
      w.send({ nacks: [{ seq: 1n }] });
      await w.until(() => w.deliveries.filter((d) => d.seq === 1n).length >= 2);
      w.send({ nacks: [{ seq: 1n }] });
      const drop = client.receive("t", "drop", { maxMessages: 10 });
      await drop.until(() => drop.deliveries.length >= 2);
      drop.send({ terminateSeqs: [1n] });
      drop.ack([2n]);
      const check = async (when: string) => {
        const dead = await settled(1, "w");
        assert.equal(dead.state, MessageDelivery_State.DEAD_LETTERED, `${when}: seq 1 on w is dead-lettered`);
        assert.equal(dead.deadLetterTopic, "t.dlq", when);
        const dropped = await settled(1, "drop");
        assert.equal(dropped.state, MessageDelivery_State.DEAD_LETTERED, `${when}: seq 1 on drop`);
        assert.equal(dropped.deadLetterTopic, "", `${when}: dropped, no dead-letter topic`);
        assert.equal((await settled(2, "w")).state, MessageDelivery_State.ACKED, `${when}: seq 2 acked`);
        assert.equal((await settled(2, "drop")).state, MessageDelivery_State.ACKED, when);
      };
      await check("live");
      await w.end();
      await drop.end();
      await restart();
      await check("after a restart");
      // A seek back delivers seq 1 again on w: no longer dead-lettered, also once restarted.
      await client.adminCall("seekSubscription", {
        topic: "t",
        name: "w",
        target: { case: "seq", value: 1n },
      });
      assert.equal((await on(1, "w")).state, MessageDelivery_State.NOT_DELIVERED);
      await restart();
      assert.equal((await on(1, "w")).state, MessageDelivery_State.NOT_DELIVERED, "after a restart");
      assert.equal((await on(1, "drop")).state, MessageDelivery_State.DEAD_LETTERED, "drop is untouched");
    } finally {
      client.close();
      await bus.stop();
    }
  });

  test(`${kind}: an ephemeral topic has nothing to browse`, async () => {
    const bus = await startBroker(await fresh(`${kind}_browse_eph`));
    const client = new TestClient(bus.address);
    try {
      await client.adminCall("createTopic", { topic: { name: "live", ephemeral: true } });
      await assert.rejects(
        client.adminCall("listMessages", { topic: "live" }),
        code(grpc.status.FAILED_PRECONDITION, /ephemeral/),
      );
      await client.publish("live", ["gone"]);
      await assert.rejects(
        client.adminCall("getMessage", { topic: "live", seq: 1n }),
        code(grpc.status.FAILED_PRECONDITION, /ephemeral/),
      );
    } finally {
      client.close();
      await bus.stop();
    }
  });
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}
