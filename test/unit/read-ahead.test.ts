import assert from "node:assert/strict";
import { test } from "node:test";
import { LogMessage } from "../../src/core/index.js";
import { ReadAhead, ReadAheadShare } from "../../src/core/read-ahead.js";
import { buildRun, copyStoredRange, packOf } from "../../src/wire/index.js";

const fields = { attributes: {}, orderingKey: "", messageId: "" };
const message = (seq: number, bytes: number) => LogMessage.of(seq, 0, Buffer.alloc(bytes), fields);

test("one read at a time; rows are handed out once, holes stay empty", () => {
  const ahead = new ReadAhead(new ReadAheadShare(64 << 20));
  assert.equal(ahead.begin(1, 1000), 64, "the first read is 64 rows");
  assert.equal(ahead.begin(65, 1000), undefined, "a read is in flight");
  ahead.fill(1, [message(1, 10), message(3, 10)]);
  ahead.end();
  assert.equal(ahead.has(1), true);
  assert.equal(ahead.has(2), false);
  assert.equal(ahead.take(2), undefined);
  assert.equal(ahead.take(3)?.seq, 3);
  assert.equal(ahead.take(3), undefined, "taken already");
  assert.equal(ahead.take(99), undefined, "beyond the range read");
  ahead.clear();
  assert.equal(ahead.has(1), false);
});

test("reads are sized for about 4 MiB, never past the watermark", () => {
  const ahead = new ReadAhead(new ReadAheadShare(64 << 20));
  assert.equal(ahead.begin(10, 20), 20);
  ahead.fill(10, [message(10, 1 << 20), message(11, 1 << 20)]);
  ahead.end();
  assert.equal(ahead.begin(12, 1000), 15, "1 MiB messages: 4 a read");
  ahead.fill(12, [message(12, 100)]);
  ahead.end();
  assert.equal(ahead.begin(13, 100_000), 13 + 5000 - 1, "small messages: at most 5000 a read");
  ahead.end();
});

test("runs read: the share counts the bytes of the records read (not their rows), and each run's bytes go as the cursor passes it", () => {
  const share = new ReadAheadShare(64 << 20);
  const ahead = new ReadAhead(share);
  const ms = Array.from({ length: 100 }, () => ({
    data: Buffer.alloc(1000),
    attributes: {},
    orderingKey: "",
    messageId: "",
    deliverAt: 0,
  }));
  // One stored row of 100 messages; the read wants seqs 11…20 and 31…40 (two runs).
  const row = buildRun(packOf(ms), undefined, 1, 1_700_000_000_000);
  const a = copyStoredRange(row.firstSeq, row.body, row.ids, 11, 20)!;
  const b = copyStoredRange(row.firstSeq, row.body, row.ids, 31, 40)!;
  assert.equal(ahead.begin(11, 1000), 74);
  ahead.fillRuns(11, 74, [a, b]);
  ahead.end();
  assert.equal(share.usedBytes, a.body.length + b.body.length);
  assert.ok(share.usedBytes < row.body.length / 4, "not the whole row");
  assert.equal(ahead.has(15), true);
  assert.equal(ahead.has(25), false, "a hole: not read");
  assert.equal(ahead.take(12)?.seq, 12);
  assert.equal(ahead.runOf(31), b);
  assert.equal(share.usedBytes, b.body.length, "the first run is let go of");
  assert.equal(ahead.runOf(41), undefined);
  assert.equal(share.usedBytes, 0);
});

test("runs read: the next range is read while the cursor is in the second half of this one, and follows it", () => {
  const share = new ReadAheadShare(64 << 20);
  const ahead = new ReadAhead(share);
  const ms = Array.from({ length: 400 }, () => ({
    data: Buffer.alloc(100),
    attributes: {},
    orderingKey: "",
    messageId: "",
    deliverAt: 0,
  }));
  const row = buildRun(packOf(ms), undefined, 1, 1_700_000_000_000);
  const cut = (from: number, to: number) => copyStoredRange(row.firstSeq, row.body, row.ids, from, to)!;
  assert.equal(ahead.prefetchFrom(1, 400), undefined, "nothing held: nothing to read after");
  assert.equal(ahead.begin(1, 400), 64, "the first read is 64 rows");
  ahead.fillRuns(1, 64, [cut(1, 64)]);
  ahead.end();
  const range = ahead.prefetchFrom(1, 400);
  assert.ok(range === undefined || range[0] === 65, "a prefetch starts after the range held");
  if (range !== undefined) ahead.end();
  // Sized by what the first read saw: past half of that many records from the end, read on.
  const next = ahead.prefetchFrom(64, 400);
  assert.ok(next !== undefined && next[0] === 65 && next[1] <= 400, `prefetch ${next}`);
  assert.equal(ahead.prefetchFrom(64, 400), undefined, "one read at a time");
  assert.equal(ahead.begin(65, 400), undefined, "one read at a time");
  const [from, to] = next;
  ahead.fillRuns(from, to, [cut(from, to)]);
  ahead.end();
  assert.equal(ahead.runOf(64)?.firstSeq, 1, "the range held is still there");
  assert.equal(ahead.runOf(65)?.firstSeq, 65, "…followed by the one read ahead");
  assert.equal(share.usedBytes, cut(65, to).body.length, "the passed run is let go of");
  // A range that does not follow (the cursor moved) replaces what is held.
  assert.equal(ahead.begin(300, 400) !== undefined, true);
  ahead.fillRuns(300, 310, [cut(300, 310)]);
  ahead.end();
  assert.equal(ahead.runOf(65), undefined);
  assert.equal(share.usedBytes, cut(300, 310).body.length);
});
