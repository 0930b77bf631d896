import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  HELD_SEQ_BYTES,
  heldKeyBytes,
  keyStringBytes,
  MAX_BLOCKED,
  OrderingGate,
} from "../../src/core/ordering-gate.js";

test("a key's held seqs are released one at a time, in the order they were held", () => {
  const gate = new OrderingGate();
  gate.take("a");
  assert.equal(gate.isBusy("a"), true);
  assert.equal(gate.isBusy("b"), false);
  assert.equal(gate.hold("a", 5), true);
  assert.equal(gate.hold("a", 6), true);
  const none = () => false;
  assert.equal(gate.release("a", none), 5);
  assert.equal(gate.isBusy("a"), true, "the released seq is the key's unacked message now");
  assert.equal(gate.release("a", none), 6);
  assert.equal(gate.release("a", none), undefined);
  assert.equal(gate.isBusy("a"), false);
});

test("held seqs acked meanwhile are passed over; a key with several unacked messages stays busy", () => {
  const gate = new OrderingGate();
  gate.take("k");
  gate.take("k");
  for (const seq of [7, 8, 9]) gate.hold("k", seq);
  const acked = new Set([7, 8]);
  assert.equal(
    gate.release("k", (s) => acked.has(s)),
    undefined,
    "one unacked message is left",
  );
  assert.equal(
    gate.release("k", (s) => acked.has(s)),
    9,
  );
  acked.add(9);
  assert.equal(
    gate.release("k", (s) => acked.has(s)),
    undefined,
  );
  assert.equal(gate.isBusy("k"), false);
});

test("holding stops at MAX_BLOCKED; reset forgets held seqs and recounts busy keys", () => {
  const gate = new OrderingGate();
  gate.take("k");
  for (let seq = 1; seq <= MAX_BLOCKED; seq++) assert.equal(gate.hold("k", seq), true);
  assert.equal(gate.hold("k", MAX_BLOCKED + 1), false);
  gate.reset(["x", "", "x"]);
  assert.equal(gate.isBusy("k"), false);
  assert.equal(gate.isBusy(""), false, "the empty key is no key");
  assert.equal(
    gate.release("x", () => false),
    undefined,
  );
  assert.equal(gate.isBusy("x"), true);
  assert.equal(gate.hold("k", 1), true);
});

test("bytes counts the key of each unacked message, each held seq and each key holding any", () => {
  const gate = new OrderingGate();
  assert.equal(gate.bytes, 0);
  gate.take("a");
  gate.take("bb");
  const busy = keyStringBytes("a") + keyStringBytes("bb");
  assert.equal(gate.bytes, busy, "each unacked message keeps its key");
  assert.equal(gate.holdCost("a"), HELD_SEQ_BYTES + heldKeyBytes("a"));
  gate.hold("a", 3);
  assert.equal(gate.holdCost("a"), HELD_SEQ_BYTES, "a key holding seqs is counted once");
  gate.hold("a", 4);
  gate.hold("bb", 5);
  assert.equal(gate.bytes, busy + 3 * HELD_SEQ_BYTES + heldKeyBytes("a") + heldKeyBytes("bb"));
  // Released: 3 goes out (and keeps the key), 4 stays held.
  assert.equal(
    gate.release("a", () => false),
    3,
  );
  assert.equal(gate.bytes, busy + 2 * HELD_SEQ_BYTES + heldKeyBytes("a") + heldKeyBytes("bb"));
  // 4 was acked meanwhile: passed over; the key neither holds anything back nor is busy.
  assert.equal(
    gate.release("a", () => true),
    undefined,
  );
  assert.equal(gate.bytes, keyStringBytes("bb") + HELD_SEQ_BYTES + heldKeyBytes("bb"));
  assert.ok(keyStringBytes("x".repeat(1024)) > 2048, "a long key counts at its length");
  gate.reset(["c", "", "c"]);
  assert.equal(gate.bytes, 2 * keyStringBytes("c"), "recounted from the unacked messages' keys");
  gate.release("c", () => false);
  gate.release("c", () => false);
  assert.equal(gate.bytes, 0);
});

test("property: per key, every held seq not acked is released exactly once, in seq order; nothing stays counted", () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.constantFrom("a", "b", "c"), fc.boolean()), { minLength: 1, maxLength: 60 }),
      (messages) => {
        // Messages in seq order: the first of each key goes out, later ones are held behind it.
        const gate = new OrderingGate();
        const acked = new Set<number>();
        const out: number[] = [];
        messages.forEach(([key, ackedEarly], i) => {
          const seq = i + 1;
          if (ackedEarly) acked.add(seq);
          if (gate.isBusy(key)) gate.hold(key, seq);
          else {
            gate.take(key);
            out.push(seq);
          }
        });
        // Ack whatever is out until nothing is released any more.
        for (let i = 0; i < out.length; i++) {
          const seq = out[i]!;
          acked.add(seq);
          const next = gate.release(messages[seq - 1]![0], (s) => acked.has(s));
          if (next !== undefined) out.push(next);
        }
        for (const key of ["a", "b", "c"]) {
          // The first message of the key, then every later one not acked while held.
          const expected: number[] = [];
          messages.forEach(([k, ackedEarly], i) => {
            if (k === key && (expected.length === 0 || !ackedEarly)) expected.push(i + 1);
          });
          assert.deepEqual(
            out.filter((s) => messages[s - 1]![0] === key),
            expected,
          );
          assert.equal(gate.isBusy(key), false);
        }
        assert.equal(gate.bytes, 0, "nothing is counted once every message is acked");
      },
    ),
  );
});
