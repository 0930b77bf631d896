import type { LogMessage } from "../core/index.js";

/**
 * The compact metadata blob stored beside each payload: attributes, ordering key and message
 * id as JSON with one-letter keys, empty parts left out. (JSON because V8 encodes and decodes
 * it natively, faster than a hand-rolled binary format here; measured in bench/.)
 */
export function encodeMeta(m: Pick<LogMessage, "attributes" | "orderingKey" | "messageId">): Buffer {
  const meta: { a?: Record<string, string>; k?: string; i?: string } = {};
  for (const _ in m.attributes) {
    meta.a = m.attributes;
    break;
  }
  if (m.orderingKey !== "") meta.k = m.orderingKey;
  if (m.messageId !== "") meta.i = m.messageId;
  return Buffer.from(JSON.stringify(meta));
}

/** Rebuilds a message from its stored columns. */
export function decodeRow(seq: number, publishedAt: number, meta: Uint8Array, data: Uint8Array): LogMessage {
  const parsed = JSON.parse(Buffer.from(meta.buffer, meta.byteOffset, meta.byteLength).toString("utf8")) as {
    a?: Record<string, string>;
    k?: string;
    i?: string;
  };
  return {
    seq,
    publishTime: publishedAt,
    data,
    attributes: parsed.a ?? {},
    orderingKey: parsed.k ?? "",
    messageId: parsed.i ?? "",
  };
}

/** Table names come from numeric ids only, never from user-supplied names. */
export function shardTable(topicId: number, shard: number): string {
  if (!Number.isInteger(topicId) || !Number.isInteger(shard))
    throw new TypeError("table ids must be integers");
  return `nb_msg_${topicId}_${shard}`;
}

/** Merges per-shard results (each sorted) into one seq-ordered list. */
export function mergeBySeq(parts: LogMessage[][]): LogMessage[] {
  const all = parts.flat();
  all.sort((a, b) => a.seq - b.seq);
  return all;
}

/** The end of the contiguous run of seqs above `watermark` among `seqs` (sorted). */
export function contiguousEnd(watermark: number, sortedSeqs: readonly number[]): number {
  let end = watermark;
  for (const seq of sortedSeqs) {
    if (seq <= end) continue;
    if (seq !== end + 1) break;
    end = seq;
  }
  return end;
}
