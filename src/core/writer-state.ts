/**
 * What start-up knows about where ids are in the log: the writer pointer's state records the
 * highest seq carrying a message id or schedule id as of the persisted watermark, so the
 * dedup-index rebuild reads only rows that can hold one (a log without ids is not read at
 * all). `lastIdSeq` is undefined for logs written before this was recorded.
 */
export interface IdHorizon {
  readonly lastIdSeq: number | undefined;
  readonly persistedWatermark: number;
}

/** The writer pointer's state blob. */
export function encodeWriterState(lastIdSeq: number): Buffer {
  return Buffer.from(JSON.stringify({ ids: lastIdSeq }));
}

/**
 * The id horizon from the writer pointer's state; undefined (read the whole recent log, the
 * safe answer) when there is none or it cannot be read.
 */
export function decodeWriterState(state: Uint8Array | null): number | undefined {
  if (state === null || state.byteLength === 0) return undefined;
  let ids: unknown;
  try {
    ids = (JSON.parse(Buffer.from(state).toString("utf8")) as { ids?: unknown }).ids;
  } catch {
    return undefined;
  }
  return typeof ids === "number" && Number.isSafeInteger(ids) && ids >= 0 ? ids : undefined;
}
