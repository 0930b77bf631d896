import assert from "node:assert/strict";
import { test } from "node:test";
import { Consumer } from "../../src/core/consumer.js";
import { type PendingEntry, pendingEntry } from "../../src/core/pending-entry.js";
import {
  decodePersistedState,
  encodePersistedState,
  MAX_PERSISTED_ENTRIES,
} from "../../src/core/persisted-state.js";

const sink = { send: () => true, ackResults: () => {}, fail: () => {} };

test("no blob and an empty blob are the state of nothing above the floor", () => {
  assert.deepEqual(decodePersistedState(null), { a: [], p: [] });
  assert.deepEqual(decodePersistedState(new Uint8Array(0)), { a: [], p: [] });
});

test("what a restart needs is kept: retries, delays and ordering keys; plain first attempts are left out", () => {
  const now = 1_000_000;
  const leased = pendingEntry(1, 0, "");
  leased.consumer = new Consumer("c", { maxMessages: 10, maxBytes: 0 }, 30_000, false, sink);
  const pending = new Map<number, PendingEntry>([
    [5, leased], // first attempt, out now: redelivered from the floor anyway
    [6, pendingEntry(3, now - 1, "")], // third attempt
    [7, pendingEntry(1, now + 500, "")], // nacked with a delay
    [8, pendingEntry(0, now, "k")], // waits behind its ordering key
  ]);
  const blob = encodePersistedState([[10, 12]], pending, now);
  assert.deepEqual(decodePersistedState(blob), {
    a: [[10, 12]],
    p: [
      [6, 3, now - 1],
      [7, 1, now + 500],
      [8, 0, now, "k"],
    ],
  });
});

test("the highest seq delivered is kept when there is one; blobs without it read as before", () => {
  const pending = new Map<number, PendingEntry>();
  assert.deepEqual(decodePersistedState(encodePersistedState([], pending, 0, 42)), { a: [], p: [], h: 42 });
  assert.deepEqual(decodePersistedState(encodePersistedState([], pending, 0)), { a: [], p: [] });
  assert.deepEqual(decodePersistedState(Buffer.from('{"a":[[3,4]],"p":[]}')), { a: [[3, 4]], p: [] });
});

test("ranges and entries are each cut at MAX_PERSISTED_ENTRIES", () => {
  const ranges: [number, number][] = [];
  const pending = new Map<number, PendingEntry>();
  for (let i = 0; i <= MAX_PERSISTED_ENTRIES; i++) {
    ranges.push([3 * i + 2, 3 * i + 2]);
    pending.set(3 * i + 1, pendingEntry(2, 0, ""));
  }
  const state = decodePersistedState(encodePersistedState(ranges, pending, 0));
  assert.equal(state.a.length, MAX_PERSISTED_ENTRIES);
  assert.equal(state.p.length, MAX_PERSISTED_ENTRIES);
});
