import { type IndexedRun, recordPriority } from "../wire/index.js";
import { CorruptRowsError } from "./errors.js";
import type { LogMessage } from "./model.js";
import { type LaneSeqs, MAX_LANE_ENTRIES } from "./priority-index.js";

/** Seqs one read of the rebuild covers (bounded memory per read; the event loop runs between reads). */
const CHUNK = 10_000;
/**
 * Stored bytes the rebuild reads at most: it runs before a restarted broker's first deliveries,
 * so a large backlog costs a bounded start (256 MiB is about a second of reading on MariaDB
 * here); the older part of a larger backlog goes out in seq order.
 */
export const MAX_REBUILD_BYTES = 256 << 20;

/** How the rebuild reads the log: runs (format 2) or, when undefined, messages (format 1). */
export interface LogReader {
  readRuns(from: number, to: number): Promise<IndexedRun[] | undefined>;
  read(from: number, to: number): Promise<LogMessage[]>;
}

/**
 * The urgent and normal seqs among the stored messages in [from, to], newest first until
 * MAX_LANE_ENTRIES seqs or MAX_REBUILD_BYTES are read (the lanes keep no more, and the start
 * stays bounded). Seqs in `knownNormal` (inclusive) are counted normal without reading them.
 * Format 2 records are not decoded: only their field tags are walked to field 9.
 */
export async function scanPriorities(
  reader: LogReader,
  from: number,
  to: number,
  knownNormal?: readonly [number, number],
  onCorrupt?: (err: CorruptRowsError) => void,
): Promise<LaneSeqs> {
  const chunks: { urgent: number[]; normal: number[] }[] = [];
  let mixed = false;
  let lastOther = 0;
  let bytes = 0;
  let hi = to;
  for (; hi >= from && to - hi < MAX_LANE_ENTRIES && bytes < MAX_REBUILD_BYTES; ) {
    let lo = Math.max(from, hi - CHUNK + 1);
    const [a, b] = knownNormal ?? [1, 0];
    const known = hi >= a && hi <= b;
    // A chunk lies wholly inside or outside the known-normal range.
    if (known) lo = Math.max(lo, a);
    else if (hi > b && lo <= b) lo = b + 1;
    const urgent: number[] = [];
    const normal: number[] = [];
    if (known) {
      for (let seq = lo; seq <= hi; seq++) normal.push(seq);
    } else {
      let runs: IndexedRun[] | undefined;
      let messages: LogMessage[] = [];
      try {
        runs = await reader.readRuns(lo, hi);
        if (runs === undefined) messages = await reader.read(lo, hi);
      } catch (err) {
        if (!(err instanceof CorruptRowsError)) throw err;
        // Cut short here, as when the bytes run out: what is below goes out in seq order, and
        // a subscription that gets to the corrupt rows is told (DATA_LOSS) rather than the
        // rebuild retrying them for ever while first deliveries wait.
        onCorrupt?.(err);
        break;
      }
      if (runs !== undefined) {
        for (const run of runs) {
          bytes += run.body.length;
          for (let k = 0; k < run.offsets.length; k++) {
            const seq = run.firstSeq + k;
            const p = recordPriority(run, k);
            if (p === 0 || p === 2) normal.push(seq);
            else {
              mixed = true;
              lastOther = Math.max(lastOther, seq);
              if (p === 1) urgent.push(seq);
            }
          }
        }
      } else {
        for (const m of messages) {
          bytes += m.bytes;
          if (m.priority === "normal") normal.push(m.seq);
          else {
            mixed = true;
            lastOther = Math.max(lastOther, m.seq);
            if (m.priority === "urgent") urgent.push(m.seq);
          }
        }
      }
      // Let deliveries of other topics and publishes run between reads (SQLite reads block).
      await new Promise((r) => setImmediate(r));
    }
    chunks.push({ urgent, normal });
    hi = lo - 1;
  }
  chunks.reverse();
  return {
    urgent: chunks.flatMap((c) => c.urgent),
    normal: chunks.flatMap((c) => c.normal),
    mixed,
    lastOther,
    from: hi + 1,
  };
}
