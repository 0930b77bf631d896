import assert from "node:assert/strict";
import { test } from "node:test";
import { UnconfirmedSettles } from "../src/unconfirmed-settles.js";

test("unconfirmed settlements: the newest `limit` are kept, at most a quarter more, the oldest forgotten first", () => {
  const kept = new UnconfirmedSettles(8);
  for (let seq = 1; seq <= 100; seq++) kept.add(seq, 1, "ack");
  const acks = kept.acks();
  assert.ok(acks.length >= 8 && acks.length <= 10, `kept ${acks.length}`);
  assert.deepEqual(
    acks,
    Array.from({ length: acks.length }, (_, i) => 101 - acks.length + i),
  );
  // A redelivery (a later attempt) of a kept ack gets the ack again; a forgotten one is new.
  assert.equal(kept.redelivered(100, 2)?.kind, "ack");
  assert.equal(kept.redelivered(1, 2), undefined);
  // Recording a seq again moves it to the newest end, so it outlives older ones.
  const moved = new UnconfirmedSettles(4);
  for (let seq = 1; seq <= 4; seq++) moved.add(seq, 1, "ack");
  moved.add(1, 2, "nack", 50);
  for (let seq = 5; seq <= 7; seq++) moved.add(seq, 1, "ack");
  assert.equal(moved.kindOf(1), "nack");
  assert.equal(moved.kindOf(2), undefined);
});
