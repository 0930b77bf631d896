import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import type { ConsumerSink, Delivered } from "../../src/core/index.js";
import { coreBroker } from "../support/core-broker.js";

/** A consumer as the property sees it: what it holds and everything it was ever sent. */
class Recorder implements ConsumerSink {
  readonly held = new Set<number>();
  readonly received: Delivered[] = [];
  constructor(readonly window: number) {}
  send(deliveries: readonly Delivered[]): boolean {
    for (const d of deliveries) {
      this.received.push(d);
      this.held.add(d.message.seq);
    }
    return true;
  }
  ackResults(): void {}
  fail(): void {}
}

const settle = async () => {
  for (let i = 0; i < 6; i++) await new Promise((r) => setImmediate(r));
};

type Op =
  | { kind: "publish"; n: number }
  | { kind: "attach"; window: number }
  | { kind: "detach"; who: number }
  | { kind: "ack"; who: number; take: number }
  | { kind: "nack"; who: number; take: number }
  | { kind: "extend"; who: number; take: number }
  | { kind: "raise"; who: number; to: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant("publish" as const), n: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ kind: fc.constant("attach" as const), window: fc.integer({ min: 1, max: 5 }) }),
  fc.record({ kind: fc.constant("detach" as const), who: fc.nat() }),
  fc.record({ kind: fc.constant("ack" as const), who: fc.nat(), take: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ kind: fc.constant("nack" as const), who: fc.nat(), take: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ kind: fc.constant("extend" as const), who: fc.nat(), take: fc.integer({ min: 1, max: 4 }) }),
  // The floor raised (purge, retention, seek forward), possibly past messages still leased.
  fc.record({ kind: fc.constant("raise" as const), who: fc.nat(), to: fc.nat() }),
);

test("property: windows hold, a message is leased to one consumer at a time, acked messages never come back, all get delivered", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 40 }), async (ops) => {
      const broker = coreBroker({ defaultShards: 2, statePersistIntervalMs: 5 }, 600_000);
      const live: {
        rec: Recorder;
        detach: () => void;
        ack: (s: number[]) => void;
        nack: (s: number) => void;
        extend: (s: number[]) => void;
        raise: (floor: number) => void;
        floor: () => number;
      }[] = [];
      const acked = new Set<number>();
      let published = 0;
      const attach = async (window: number) => {
        const rec = new Recorder(window);
        const a = await broker.subscribe(
          "t",
          "s",
          {
            window: { maxMessages: window, maxBytes: 0 },
            ackDeadlineMs: undefined,
            start: { kind: "earliest" },
            confirmAcks: false,
            consumerName: "",
          },
          rec,
        );
        live.push({
          rec,
          detach: () => a.subscription.detach(a.consumer),
          ack: (seqs) => a.subscription.ack(a.consumer, seqs),
          nack: (seq) => a.subscription.nack(a.consumer, seq, 0),
          extend: (seqs) => a.subscription.extend(a.consumer, seqs, 60_000),
          raise: (floor) => a.subscription.moveFloor(floor),
          floor: () => a.subscription.floor,
        });
      };
      const check = () => {
        const owner = new Map<number, number>();
        live.forEach(({ rec }, i) => {
          assert.ok(
            rec.held.size <= rec.window,
            `consumer ${i} holds ${rec.held.size} > window ${rec.window}`,
          );
          for (const seq of rec.held) {
            assert.equal(owner.has(seq), false, `seq ${seq} leased to two consumers`);
            owner.set(seq, i);
            assert.equal(acked.has(seq), false, `acked seq ${seq} delivered again`);
          }
        });
      };
      try {
        for (const o of ops) {
          if (o.kind === "publish") {
            await broker.publish(
              "t",
              Array.from({ length: o.n }, (_, i) => ({
                data: Buffer.from(`m${published + i}`),
                attributes: {},
                orderingKey: "",
                messageId: "",
                deliverAt: 0,
              })),
              Date.now() + 10_000,
            );
            published += o.n;
          } else if (o.kind === "attach") {
            await attach(o.window);
          } else if (live.length > 0) {
            const i = o.who % live.length;
            const c = live[i]!;
            if (o.kind === "detach") {
              c.detach();
              live.splice(i, 1);
            } else if (o.kind === "raise") {
              // Only up: a lower floor is a seek back, which brings acked messages back on purpose.
              const floor = o.to % (published + 1);
              if (floor > c.floor()) {
                c.raise(floor);
                for (let s = 1; s <= floor; s++) acked.add(s);
                for (const other of live)
                  for (const s of [...other.rec.held]) if (s <= floor) other.rec.held.delete(s);
              }
            } else if (o.kind === "extend") {
              c.extend([...c.rec.held].slice(0, o.take));
            } else {
              const seqs = [...c.rec.held].slice(0, o.take);
              for (const s of seqs) c.rec.held.delete(s);
              if (o.kind === "ack") {
                c.ack(seqs);
                for (const s of seqs) acked.add(s);
              } else {
                for (const s of seqs) c.nack(s);
              }
            }
          }
          await settle();
          check();
        }
        // Liveness: one consumer that acks everything ends up with every message acked.
        for (const c of live.splice(0)) c.detach();
        await attach(3);
        const drain = live[0]!;
        for (let round = 0; round < 200 && acked.size < published; round++) {
          await settle();
          check();
          const seqs = [...drain.rec.held];
          for (const s of seqs) {
            drain.rec.held.delete(s);
            acked.add(s);
          }
          if (seqs.length > 0) drain.ack(seqs);
        }
        assert.equal(acked.size, published, "every published message was delivered and acked");
      } finally {
        await broker.close(1000);
      }
    }),
    { numRuns: 60 },
  );
});
