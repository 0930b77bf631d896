import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { DeadLetterLog, MAX_DEAD_LETTER_RUNS } from "../../src/core/dead-letter-log.js";

type Op = { op: "add"; seq: number; topic: string } | { op: "from" | "through"; seq: number };

/** The log's whole blob, as the next store write would carry it. */
const blobOf = (log: DeadLetterLog) => {
  log.untake();
  return log.take()!;
};
const runsOf = (log: DeadLetterLog) =>
  JSON.parse(Buffer.from(blobOf(log)).toString()) as [number, number, string][];

test("property: matches a map model; runs sorted, disjoint, merged when adjacent with one topic; survives a round trip", () => {
  const op: fc.Arbitrary<Op> = fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({
        op: fc.constant("add" as const),
        seq: fc.integer({ min: 1, max: 40 }),
        topic: fc.constantFrom("", "dlq", "other"),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        op: fc.constantFrom("from" as const, "through" as const),
        seq: fc.integer({ min: 0, max: 41 }),
      }),
    },
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
      const log = DeadLetterLog.decode(null);
      const model = new Map<number, string>();
      for (const o of ops) {
        if (o.op === "add") {
          log.add(o.seq, o.topic);
          model.set(o.seq, o.topic);
        } else if (o.op === "from") {
          log.forgetFrom(o.seq);
          for (const s of [...model.keys()]) if (s >= o.seq) model.delete(s);
        } else {
          log.forgetThrough(o.seq);
          for (const s of [...model.keys()]) if (s <= o.seq) model.delete(s);
        }
      }
      const restored = DeadLetterLog.decode(blobOf(log));
      for (let seq = 0; seq <= 42; seq++) {
        assert.equal(log.topicOf(seq), model.get(seq), `seq ${seq}`);
        assert.equal(restored.topicOf(seq), model.get(seq), `seq ${seq} after a round trip`);
      }
      const runs = runsOf(log);
      for (const [i, [first, last, topic]] of runs.entries()) {
        assert.ok(first <= last);
        const next = runs[i + 1];
        if (next === undefined) continue;
        assert.ok(last < next[0], "sorted and disjoint");
        assert.ok(last + 1 < next[0] || topic !== next[2], "adjacent runs of one topic are merged");
      }
    }),
  );
});

test("only changes are taken; a failed write is taken again; an unreadable blob is an empty log", () => {
  const log = DeadLetterLog.decode(null);
  assert.equal(log.take(), undefined, "nothing changed");
  log.add(5, "dlq");
  const blob = log.take();
  assert.ok(blob !== undefined);
  assert.equal(log.take(), undefined);
  log.add(5, "dlq");
  assert.equal(log.take(), undefined, "the same again changes nothing");
  log.untake();
  assert.deepEqual(log.take(), blob);
  assert.equal(log.forgetThrough(1), false);
  assert.equal(log.forgetFrom(9), false);
  assert.equal(DeadLetterLog.decode(Buffer.from("{not json")).topicOf(5), undefined);
  assert.equal(DeadLetterLog.decode(blob).topicOf(5), "dlq");
});

test(`past ${MAX_DEAD_LETTER_RUNS} runs the oldest are forgotten`, () => {
  const log = DeadLetterLog.decode(null);
  for (let i = 0; i <= MAX_DEAD_LETTER_RUNS; i++) log.add(1 + 2 * i, "dlq");
  assert.equal(log.topicOf(1), undefined, "the oldest run is gone");
  assert.equal(log.topicOf(3), "dlq");
  assert.equal(log.topicOf(1 + 2 * MAX_DEAD_LETTER_RUNS), "dlq");
  assert.equal(runsOf(log).length, MAX_DEAD_LETTER_RUNS);
});
