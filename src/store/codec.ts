import type { LoggedIds, LogMessage, NewMessage, SubscriptionConfig, TopicConfig } from "../core/index.js";

/**
 * The compact metadata blob stored beside each payload: attributes, ordering key and message
 * id as JSON with one-letter keys, empty parts left out. (JSON because V8 encodes and decodes
 * it natively, faster than a hand-rolled binary format here; measured in bench/.)
 */
export function encodeMeta(
  m: Pick<LogMessage, "attributes" | "orderingKey" | "messageId" | "scheduleId">,
): Buffer {
  const meta: { a?: Record<string, string>; k?: string; i?: string; s?: number } = {};
  for (const _ in m.attributes) {
    meta.a = m.attributes;
    break;
  }
  if (m.orderingKey !== "") meta.k = m.orderingKey;
  if (m.messageId !== "") meta.i = m.messageId;
  if (m.scheduleId !== undefined) meta.s = m.scheduleId;
  return Buffer.from(JSON.stringify(meta));
}

type Meta = { a?: Record<string, string>; k?: string; i?: string; s?: number };

function parseMeta(meta: Uint8Array): Meta {
  return JSON.parse(Buffer.from(meta.buffer, meta.byteOffset, meta.byteLength).toString("utf8")) as Meta;
}

/** Rebuilds a message from its stored columns. */
export function decodeRow(seq: number, publishedAt: number, meta: Uint8Array, data: Uint8Array): LogMessage {
  const m = parseMeta(meta);
  const row: LogMessage = {
    seq,
    publishTime: publishedAt,
    data,
    attributes: m.a ?? {},
    orderingKey: m.k ?? "",
    messageId: m.i ?? "",
  };
  return m.s === undefined ? row : { ...row, scheduleId: m.s };
}

const ID_KEY = Buffer.from('"i":');
const SCHEDULE_KEY = Buffer.from('"s":');

/**
 * The ids of a stored message. Most messages carry neither a message id nor a schedule id, so
 * the JSON is parsed only when one of their keys appears in the bytes (start-up scans read
 * every recent row).
 */
export function decodeIds(seq: number, publishedAt: number, meta: Uint8Array): LoggedIds {
  const bytes = Buffer.from(meta.buffer, meta.byteOffset, meta.byteLength);
  if (bytes.indexOf(ID_KEY) < 0 && bytes.indexOf(SCHEDULE_KEY) < 0) {
    return { seq, publishTime: publishedAt, messageId: "", scheduleId: undefined };
  }
  const m = parseMeta(meta);
  return { seq, publishTime: publishedAt, messageId: m.i ?? "", scheduleId: m.s };
}

/** A delayed message as stored in the schedule. */
export function decodeScheduled(id: number, dueAt: number, meta: Uint8Array, data: Uint8Array) {
  const m = parseMeta(meta);
  const message: NewMessage = {
    data,
    attributes: m.a ?? {},
    orderingKey: m.k ?? "",
    messageId: m.i ?? "",
    deliverAt: dueAt,
  };
  return { id, dueAt, message };
}

export function encodeConfig(config: TopicConfig | SubscriptionConfig): string {
  return JSON.stringify(config);
}

export function decodeConfig<T>(text: string): T {
  return JSON.parse(text) as T;
}

/** Schedule table of a topic (delayed messages). */
export function scheduleTable(topicId: number): string {
  if (!Number.isInteger(topicId)) throw new TypeError("table ids must be integers");
  return `nb_sched_${topicId}`;
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
