/**
 * What start-up knows about where ids are in the log: the writer pointer's state records the
 * highest seq carrying a message id or schedule id as of the persisted watermark, so the
 * dedup-index rebuild reads only rows that can hold one (a log without ids is not read at
 * all). `lastIdSeq` is undefined for logs written before this was recorded.
 */
export interface IdHorizon {
  readonly lastIdSeq: number | undefined;
  readonly persistedWatermark: number;
  /**
   * Likewise the highest seq with a priority other than normal (no later message is urgent or
   * bulk, up to the persisted watermark), so the priority-lane rebuild reads only what can hold
   * one; undefined when not recorded.
   */
  readonly lastPrioritySeq?: number | undefined;
}

/** The writer pointer's state blob. */
export function encodeWriterState(lastIdSeq: number, lastPrioritySeq?: number): Buffer {
  return Buffer.from(JSON.stringify({ ids: lastIdSeq, prio: lastPrioritySeq }));
}

/**
 * The id horizon from the writer pointer's state; undefined (read the whole recent log, the
 * safe answer) when there is none or it cannot be read.
 */
export function decodeWriterState(state: Uint8Array | null): number | undefined {
  return field(state, "ids");
}

/** The priority horizon from the writer pointer's state; undefined (read the backlog) when not recorded. */
export function decodePriorityState(state: Uint8Array | null): number | undefined {
  return field(state, "prio");
}

function field(state: Uint8Array | null, key: "ids" | "prio"): number | undefined {
  if (state === null || state.byteLength === 0) return undefined;
  let v: unknown;
  try {
    v = (JSON.parse(Buffer.from(state).toString("utf8")) as Record<string, unknown>)[key];
  } catch {
    return undefined;
  }
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? v : undefined;
}
