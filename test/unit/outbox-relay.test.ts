import assert from "node:assert/strict";
import { test } from "node:test";
import {
  type LoggedIds,
  NerveBusError,
  type NewMessage,
  Outcomes,
  type PublishResult,
  type RelayTarget,
} from "../../src/core/index.js";
import { OutboxRelay } from "../../src/core/outbox-relay.js";
import type { OutboxRow, OutboxSource, PassedGap, RelayState } from "../../src/core/outbox-source.js";

/*
 * The relay's read order against an outbox whose commits the test places between the relay's
 * reads (an in-memory source: with MariaDB the moment between two of the relay's SELECTs cannot
 * be hit on purpose). Each key's rows must come out in id order, which is its commit order.
 */

/** An outbox in memory: rows exist from the start, visible once committed. */
class MemoryOutbox implements OutboxSource {
  readonly name = "memory";
  readonly #rows = new Map<number, { key: string; committed: boolean }>();
  #cursor = 0;
  #gaps: { gaps: readonly PassedGap[]; at: number } = { gaps: [], at: 0 };
  readonly #scanFrom = new Map<string, number>();
  /** While set, complete changes nothing (a broker killed before its deletes commit). */
  lose = false;
  /** Runs once, right after the next read computed its answer. */
  afterRead: (() => void) | undefined;

  constructor(rows: Record<number, string>) {
    for (const [id, key] of Object.entries(rows)) this.#rows.set(Number(id), { key, committed: false });
  }

  commit(...ids: number[]): void {
    for (const id of ids) this.#rows.get(id)!.committed = true;
  }

  async open(): Promise<RelayState> {
    const since = Date.now() - this.#gaps.at;
    const passedGaps = this.#gaps.gaps.map((g) => ({ ...g, ageMs: g.ageMs + since }));
    return { sourceId: "memory", cursor: this.#cursor, scanFrom: new Map(this.#scanFrom), passedGaps };
  }

  held(): boolean {
    return true;
  }

  async fetch(cursor: number, limit: number): Promise<OutboxRow[]> {
    return this.#read((id) => id > cursor, limit);
  }

  async fetchLate(ranges: readonly (readonly [number, number])[], limit: number): Promise<OutboxRow[]> {
    return this.#read((id) => ranges.some(([lo, hi]) => id >= lo && id <= hi), limit);
  }

  #read(match: (id: number) => boolean, limit: number): OutboxRow[] {
    const ids = [...this.#rows].filter(([id, r]) => r.committed && match(id)).map(([id]) => id);
    const rows = ids
      .sort((a, b) => a - b)
      .slice(0, limit)
      .map((id) => ({
        id,
        topic: "t",
        orderingKey: this.#rows.get(id)!.key,
        attributes: {},
        data: new Uint8Array(),
        ageMs: 0,
        readAt: Date.now(),
      }));
    const after = this.afterRead;
    this.afterRead = undefined;
    after?.();
    return rows;
  }

  async addTopic(topic: string, scanFrom: number): Promise<void> {
    if (!this.#scanFrom.has(topic)) this.#scanFrom.set(topic, scanFrom);
  }

  async complete(...[ids, scanFrom, cursor, gaps]: Parameters<OutboxSource["complete"]>): Promise<void> {
    if (this.lose) return;
    for (const [topic, from] of scanFrom)
      this.#scanFrom.set(topic, Math.max(from, this.#scanFrom.get(topic) ?? 0));
    for (const id of ids) this.#rows.delete(id);
    this.#cursor = Math.max(this.#cursor, cursor);
    if (gaps !== undefined) this.#gaps = { gaps, at: Date.now() };
  }

  async close(): Promise<void> {}
}

/**
 * Records the row ids published, in order. A topic owned elsewhere (no seqs, no log to read
 * back), or with `owned` this broker's: seqs from 1, its log read back in a recovery.
 */
class RecordingTarget implements RelayTarget {
  readonly closing = false;
  readonly published: number[] = [];
  readonly #log: LoggedIds[] = [];
  /** Runs at the start of the next publish; throwing fails it. */
  onPublish: (() => void) | undefined;

  constructor(private readonly owned = false) {}

  async publish(_topic: string, messages: readonly NewMessage[]): Promise<PublishResult> {
    const hook = this.onPublish;
    this.onPublish = undefined;
    hook?.();
    const results = new Outcomes(messages.length, undefined);
    for (const [i, m] of messages.entries()) {
      this.published.push(Number(m.messageId!.split("/")[2]));
      if (!this.owned) continue;
      const seq = this.#log.length + 1;
      this.#log.push({ seq, publishTime: 0, messageId: m.messageId!, scheduleId: undefined });
      results.seq[i] = seq;
    }
    return { firstSeq: 0, lastSeq: 0, results };
  }

  async nextSeq(): Promise<number | undefined> {
    return this.owned ? this.#log.length + 1 : undefined;
  }

  async durableIds(_topic: string, fromSeq: number) {
    if (!this.owned) return { through: fromSeq - 1, ids: [] };
    return { through: this.#log.length, ids: this.#log.filter((r) => r.seq >= fromSeq) };
  }
}

async function relayUntil(source: MemoryOutbox, target: RecordingTarget, count: number): Promise<void> {
  const relay = new OutboxRelay(source, target, {
    pollMs: 1,
    gapWaitMs: 0,
    batchRows: 100,
    maxPackMessages: 100,
    maxPackBytes: 1 << 20,
    log: () => undefined,
  });
  relay.start();
  try {
    for (let i = 0; target.published.length < count; i++) {
      assert.ok(i < 2000, `published ${target.published.join(",")}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  } finally {
    await relay.stop();
  }
}

test("a late row and its key's next transaction committing between the relay's reads go in key order", async () => {
  // 1 (key x) and 2 (key c) are open when the relay first reads: it passes them and publishes 3.
  // 2 commits then; the relay's next round finds it late, and right after that read, 1 and the
  // key's next row 4 commit. Reading below the cursor before above, the relay published 4 in
  // that round and 1 after it.
  const source = new MemoryOutbox({ 1: "x", 2: "c", 3: "a", 4: "x" });
  const target = new RecordingTarget();
  source.commit(3);
  target.onPublish = () => {
    source.commit(2);
    source.afterRead = () => source.commit(1, 4);
  };
  await relayUntil(source, target, 4);
  const ofX = target.published.filter((id) => id === 1 || id === 4);
  assert.deepEqual(ofX, [1, 4], `published ${target.published.join(",")}`);
});

test("after a failed round the relay still looks in the gaps it passed before: a row committed there goes before its key's next one", async () => {
  // 1 (key x) is open: the relay passes it and publishes 2. Publishing 3 fails once; the relay
  // recovers, sweeps below its cursor and publishes 3. Then 1 and its key's next row 4 commit.
  // The gate the relay made at its recovery had forgotten the gap at 1: it published 4, and 1
  // only at its next full sweep, 5 s later.
  const source = new MemoryOutbox({ 1: "x", 2: "y", 3: "y", 4: "x" });
  const target = new RecordingTarget();
  source.commit(2);
  target.onPublish = () => {
    source.commit(3);
    target.onPublish = () => {
      target.onPublish = () => source.commit(1, 4);
      throw new NerveBusError("unavailable", "the topic's owner went away");
    };
  };
  await relayUntil(source, target, 4);
  assert.deepEqual(target.published, [2, 3, 1, 4]);
});

test("after a restart the relay looks in the gaps its predecessor passed: a row committed there goes before its key's next one", async () => {
  // 1 (key x) is open: the first relay passes it, publishes 2 and stops. The next relay's first
  // round sweeps below its cursor (nothing there yet) and publishes 3; then 1 and its key's next
  // row 4 commit. Not knowing the gap at 1, it published 4 at once and 1 at its next full sweep.
  const source = new MemoryOutbox({ 1: "x", 2: "y", 3: "y", 4: "x" });
  const target = new RecordingTarget();
  source.commit(2);
  await relayUntil(source, target, 1);
  source.commit(3);
  target.onPublish = () => source.commit(1, 4);
  await relayUntil(source, target, 4);
  assert.deepEqual(target.published, [2, 3, 1, 4]);
});

test("after a crash before its deletes committed, the relay looks in every id up to the cursor found in the log", async () => {
  // As above, but the first relay's delete (with the cursor and its gaps) never commits: the
  // next one finds 2 in the topic's log, so its cursor moves past the gap at 1 it was not told of.
  const source = new MemoryOutbox({ 1: "x", 2: "y", 3: "y", 4: "x" });
  const target = new RecordingTarget(true);
  source.commit(2);
  source.lose = true;
  await relayUntil(source, target, 1);
  source.lose = false;
  source.commit(3);
  target.onPublish = () => source.commit(1, 4);
  await relayUntil(source, target, 4);
  assert.deepEqual(target.published, [2, 3, 1, 4]);
});
