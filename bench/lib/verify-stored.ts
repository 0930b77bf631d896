import type { LoggedIds } from "../../src/core/index.js";
import { openStore } from "../../src/store/index.js";

/** The overload check: every confirmed message stored, and how many were stored unconfirmed. */
export interface Verification {
  confirmed: number;
  found: number;
  missing: number;
  storedUnconfirmed: number;
  method: string;
}

// Seqs per read: ~50,000 rows of ids in memory at a time, whatever the size of the log.
const CHUNK = 50_000;

/**
 * Reads the topic back through the broker's own Store (the broker must be stopped: a store has
 * one owner) and counts the confirmed seqs present, and all rows of the topic: rows beyond the
 * confirmed ones belong to packs whose client gave up (deadline) but that were written anyway,
 * work the broker did for nobody. `ranges` are merged and sorted, as runOverload returns them.
 */
export async function verifyStored(
  storeUrl: string,
  topicName: string,
  ranges: readonly [number, number][],
): Promise<Verification> {
  let confirmed = 0;
  for (const [a, b] of ranges) confirmed += b - a + 1;
  let found = 0;
  let stored = 0;
  let next = 0; // the first range that can still hold a seq at or above the last one counted
  const count = (rows: readonly LoggedIds[]) => {
    for (const { seq } of rows) {
      stored++;
      while (next < ranges.length && ranges[next]![1] < seq) next++;
      if (next < ranges.length && ranges[next]![0] <= seq) found++;
    }
  };
  // The test MariaDB relaxes innodb_flush_log_at_trx_commit; this only reads.
  const store = await openStore(storeUrl, {
    mysqlPoolSize: 4,
    mysqlAllowUnsafeDurability: true,
    log: () => {},
  });
  try {
    const topic = (await store.ensureTopic(topicName, null))?.topic;
    const first = topic === undefined ? 0 : await store.firstSeq(topic);
    if (topic !== undefined && first > 0) {
      const lastConfirmed = ranges.at(-1)?.[1] ?? 0;
      for (let from = first; from <= lastConfirmed; from += CHUNK)
        count(await store.readIds(topic, from, Math.min(lastConfirmed, from + CHUNK - 1)));
      // Above the last confirmed seq lie only the packs nobody saw confirmed at the end (in
      // flight, or given up): few enough to read in one go.
      count(await store.readIds(topic, Math.max(first, lastConfirmed + 1), Number.MAX_SAFE_INTEGER));
    }
  } finally {
    await store.close();
  }
  return {
    confirmed,
    found,
    missing: confirmed - found,
    storedUnconfirmed: stored - found,
    method: "Store.readIds over every stored seq of the topic, each looked up in the confirmed seq ranges",
  };
}
