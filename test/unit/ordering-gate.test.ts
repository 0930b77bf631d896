import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { HELD_SEQ_BYTES, heldKeyBytes, MAX_BLOCKED, OrderingGate } from "../../src/core/ordering-gate.js";

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

test("heldBytes counts each held seq and each key holding any; holdCost says what a hold adds", () => {
  const gate = new OrderingGate();
  gate.take("a");
  gate.take("bb");
  assert.equal(gate.heldBytes, 0, "busy keys alone hold nothing back");
  assert.equal(gate.holdCost("a"), HELD_SEQ_BYTES + heldKeyBytes("a"));
  gate.hold("a", 3);
  assert.equal(gate.holdCost("a"), HELD_SEQ_BYTES, "the key is counted once");
  gate.hold("a", 4);
  gate.hold("bb", 5);
  assert.equal(gate.heldBytes, 3 * HELD_SEQ_BYTES + heldKeyBytes("a") + heldKeyBytes("bb"));
  // Released: 3 goes out, 4 stays held.
  assert.equal(
    gate.release("a", () => false),
    3,
  );
  assert.equal(gate.heldBytes, 2 * HELD_SEQ_BYTES + heldKeyBytes("a") + heldKeyBytes("bb"));
  // 4 was acked meanwhile: passed over, and the key holds nothing any more.
  assert.equal(
    gate.release("a", () => true),
    undefined,
  );
  assert.equal(gate.heldBytes, HELD_SEQ_BYTES + heldKeyBytes("bb"));
  assert.ok(heldKeyBytes("x".repeat(1024)) > 2048, "a long key counts at its length");
  gate.reset([]);
  assert.equal(gate.heldBytes, 0);
});

test("property: per key, every held seq not acked is released exactly once, in seq order", () => {
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
      },
    ),
  );
});
