import {
  type LoggedIds,
  LogMessage,
  type NewMessage,
  type SubscriptionConfig,
  type TopicConfig,
  type TopicSchema,
} from "../core/index.js";
import {
  copyStoredRange,
  decodeMeta,
  decodeRun,
  encodeMeta,
  encodeRun,
  type IndexedRun,
  metaIds,
  type RunRow,
  traceIdOf,
} from "../wire/index.js";

/** Rebuilds a message from its stored columns (the metadata stays encoded until asked for). */
export function decodeRow(seq: number, publishedAt: number, meta: Buffer, data: Uint8Array): LogMessage {
  return new LogMessage(seq, publishedAt, data, meta);
}

/** The ids of a stored message, for the deduplication indexes. */
export function decodeIds(seq: number, publishedAt: number, meta: Buffer): LoggedIds {
  const { messageId, scheduleId } = metaIds(meta);
  return { seq, publishTime: publishedAt, messageId, scheduleId };
}

/** The metadata column of a delayed message in the schedule (same format as the log's). */
export function encodeScheduledMeta(m: NewMessage): Buffer {
  return encodeMeta(m, traceIdOf(m.attributes.traceparent) ?? "");
}

/** A delayed message as stored in the schedule. */
export function decodeScheduled(id: number, dueAt: number, meta: Buffer, data: Uint8Array) {
  const m = decodeMeta(meta);
  const message: NewMessage = {
    data,
    attributes: m.attributes,
    orderingKey: m.orderingKey,
    messageId: m.messageId,
    deliverAt: dueAt,
    priority: m.priority,
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

/** Format 2: a shard table of runs (a row per run of consecutive messages). */
export function runTable(topicId: number, shard: number): string {
  if (!Number.isInteger(topicId) || !Number.isInteger(shard))
    throw new TypeError("table ids must be integers");
  return `nb_run_${topicId}_${shard}`;
}

/**
 * The query reading the runs of a format-2 shard table that overlap a seq range, parameters
 * (from, to): the first run ending at or after `from` is found in the last_seq index (one
 * dive), then the rows are a primary-key range up to `to`. Runs of one table never overlap, so
 * every row of that range ends at or after `from`. The plain `last_seq >= ? AND first_seq <= ?`
 * made MariaDB walk one of the indexes to its end: the last_seq one to the end of the table, or
 * the primary key from the table's start, reading every earlier row's body (measured:
 * Handler_read_next grew with the position in the log).
 */
export function runsOverlappingSql(table: string, columns: string): string {
  return `SELECT ${columns} FROM ${table} WHERE first_seq BETWEEN
    (SELECT first_seq FROM ${table} WHERE last_seq >= ? ORDER BY last_seq LIMIT 1) AND ?`;
}

/** A topic's shard tables, by its format. */
export function logTable(topic: { id: number; format: number }, shard: number): string {
  return topic.format === 2 ? runTable(topic.id, shard) : shardTable(topic.id, shard);
}

/**
 * Format 2: cuts messages (in seq order) into runs of consecutive seqs and encodes each; every
 * message adopts its record (a view into its run's body).
 */
export function encodeRuns(rows: readonly LogMessage[]): RunRow[] {
  const runs: RunRow[] = [];
  let start = 0;
  for (let i = 1; i <= rows.length; i++) {
    if (i < rows.length && rows[i]!.seq === rows[i - 1]!.seq + 1) continue;
    const members = rows.slice(start, i);
    let bytes = 0;
    for (const m of members) bytes += m.bytes;
    runs.push(encodeRun(members, bytes, (k, record, data) => members[k]!.adoptRecord(record, data)));
    start = i;
  }
  return runs;
}

/** Format 1: the messages of runs the broker built, one LogMessage each (a row per message). */
export function messagesOfIndexedRuns(runs: readonly IndexedRun[]): LogMessage[] {
  const out: LogMessage[] = [];
  for (const run of runs) out.push(...messagesOfRuns([run], run.firstSeq, run.lastSeq));
  return out;
}

/** A run as read back from a store: its body and schedule ids. */
export interface StoredRun {
  readonly firstSeq: number;
  readonly body: Buffer;
  readonly ids: Buffer | null;
}

/** Format 2: the messages with from ≤ seq ≤ to of runs read from any shards, in seq order. */
export function messagesOfRuns(runs: StoredRun[], from: number, to: number): LogMessage[] {
  runs.sort((a, b) => a.firstSeq - b.firstSeq);
  const out: LogMessage[] = [];
  for (const run of runs) {
    for (const r of decodeRun(run.body, run.ids, from, to)) {
      const m = new LogMessage(r.seq, r.publishTime, r.data, r.meta);
      m.record = r.record;
      out.push(m);
    }
  }
  return out;
}

/** Format 2: the records with from ≤ seq ≤ to of runs read from any shards, as runs in seq order. */
export function indexedRunsOf(runs: StoredRun[], from: number, to: number): IndexedRun[] {
  runs.sort((a, b) => a.firstSeq - b.firstSeq);
  const out: IndexedRun[] = [];
  for (const run of runs) {
    const r = copyStoredRange(run.firstSeq, run.body, run.ids, from, to);
    if (r !== undefined) out.push(r);
  }
  return out;
}

/** Format 2: the ids of the messages with from ≤ seq ≤ to of runs, in seq order. */
export function idsOfRuns(runs: StoredRun[], from: number, to: number): LoggedIds[] {
  runs.sort((a, b) => a.firstSeq - b.firstSeq);
  const out: LoggedIds[] = [];
  for (const run of runs)
    for (const r of decodeRun(run.body, run.ids, from, to)) out.push(decodeIds(r.seq, r.publishTime, r.meta));
  return out;
}

/**
 * Format 2 crash recovery: among runs (first, last) above `watermark`, the end of the chain of
 * runs that follow one another from watermark + 1.
 */
export function runsContiguousEnd(watermark: number, runs: { first: number; last: number }[]): number {
  runs.sort((a, b) => a.first - b.first);
  let end = watermark;
  for (const r of runs) {
    if (r.last <= end) continue;
    if (r.first > end + 1) break;
    end = r.last;
  }
  return end;
}

/**
 * Merges per-shard results (each sorted, seqs unique, all within [fromSeq, toSeq]) into one
 * seq-ordered list: by placing each row at its seq when the range is dense (the usual case,
 * shards interleave seqs), by sorting when it is sparse.
 */
export function mergeBySeq(parts: LogMessage[][], fromSeq: number, toSeq: number): LogMessage[] {
  if (parts.length === 1) return parts[0]!;
  let total = 0;
  for (const p of parts) total += p.length;
  const span = toSeq - fromSeq + 1;
  if (span > 2 * total + 1024) {
    const all = parts.flat();
    all.sort((a, b) => a.seq - b.seq);
    return all;
  }
  const slots = new Array<LogMessage | undefined>(span);
  for (const p of parts) for (const m of p) slots[m.seq - fromSeq] = m;
  const out: LogMessage[] = [];
  for (const m of slots) if (m !== undefined) out.push(m);
  return out;
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

/** A topic schema from its row in nb_topic_schemas (the same columns on both stores). */
export function toTopicSchema(row: {
  message_type: string;
  descriptor_set: Uint8Array;
  updated_at: number;
}): TopicSchema {
  return {
    messageType: row.message_type,
    descriptorSet: new Uint8Array(row.descriptor_set),
    updatedAt: row.updated_at,
  };
}

/**
 * Store.lowestPointer's query (the same SQL on MySQL and SQLite): subscriptions of the topic,
 * how many of them have a pointer, and the lowest of those pointers; parameter: the topic id
 * twice.
 */
export const LOWEST_POINTER_SQL = `SELECT (SELECT COUNT(*) FROM nb_subscriptions WHERE topic_id = ?) AS subs,
    COUNT(*) AS n, MIN(p.ptr) AS lo
  FROM nb_pointers p JOIN nb_subscriptions s ON s.topic_id = p.topic_id AND s.name = p.subscription
  WHERE p.topic_id = ?`;

/** Store.lowestPointer from LOWEST_POINTER_SQL's row. */
export function lowestPointerOf(row: { subs: unknown; n: unknown; lo: unknown } | undefined): number {
  const subs = Number(row?.subs ?? 0);
  if (subs === 0 || Number(row?.n ?? 0) < subs) return 0;
  return Number(row?.lo ?? 0);
}
