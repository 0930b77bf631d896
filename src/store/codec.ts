import {
  corruptRows,
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
  type RunRecord,
  type RunRow,
  traceIdOf,
} from "../wire/index.js";

/**
 * Format 1: a message rebuilt from its stored columns, its metadata decoded here so that a
 * corrupt row is DATA_LOSS naming it rather than an exception wherever it is first read.
 */
export function decodeRow(
  topic: RowOwner,
  seq: number,
  publishedAt: number,
  meta: Buffer,
  data: Uint8Array,
): LogMessage {
  const m = new LogMessage(seq, publishedAt, data, meta);
  try {
    void m.attributes;
  } catch (err) {
    throw corruptRows(topic.name, seq, seq, err);
  }
  return m;
}

/** Format 1: the ids of a stored message, for the deduplication indexes (DATA_LOSS when corrupt). */
export function storedIds(topic: RowOwner, seq: number, publishedAt: number, meta: Buffer): LoggedIds {
  try {
    return decodeIds(seq, publishedAt, meta);
  } catch (err) {
    throw corruptRows(topic.name, seq, seq, err);
  }
}

/** The ids of a message's metadata. */
function decodeIds(seq: number, publishedAt: number, meta: Buffer): LoggedIds {
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

/**
 * The message id of a schedule entry's stored metadata; "" when it has none, or when the
 * metadata does not decode (a corrupt entry must not stop the dedup index being rebuilt).
 */
export function scheduledMessageId(meta: Buffer): string {
  try {
    return metaIds(meta).messageId;
  } catch {
    return "";
  }
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
 * A run row's column values in the order both stores' run tables declare them: first_seq,
 * last_seq, first_time, last_time, bytes, body, ids.
 */
export function runRowValues(r: RunRow): [number, number, number, number, number, Buffer, Buffer | null] {
  return [r.firstSeq, r.lastSeq, r.firstTime, r.lastTime, r.bytes, r.body, r.ids];
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
  for (const run of runs) out.push(...messagesOfRuns({ name: "" }, [run], run.firstSeq, run.lastSeq));
  return out;
}

/** A run as read back from a store: its seqs, body and schedule ids. */
export interface StoredRun {
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly body: Buffer;
  readonly ids: Buffer | null;
}

/** Names what a store reads rows for (the topic), so that a corrupt row's error can name them. */
export interface RowOwner {
  readonly name: string;
}

/**
 * Runs `parse` over one stored run; what it throws (the bytes are malformed) becomes the run's
 * DATA_LOSS error. `count` (what `parse` made of the run's seqs in [from, to]) must be all of
 * them: a body shorter than its row's seqs is corrupt too, not messages that retention removed.
 */
function parseRun<T>(
  topic: RowOwner,
  run: StoredRun,
  from: number,
  to: number,
  parse: () => T,
  count: (parsed: T) => number,
): T {
  let parsed: T;
  try {
    parsed = parse();
  } catch (err) {
    throw corruptRows(topic.name, run.firstSeq, run.lastSeq, err);
  }
  const wanted = Math.min(to, run.lastSeq) - Math.max(from, run.firstSeq) + 1;
  const got = count(parsed);
  if (got !== Math.max(0, wanted))
    throw corruptRows(
      topic.name,
      run.firstSeq,
      run.lastSeq,
      `its body holds ${got} of the ${wanted} records asked for`,
    );
  return parsed;
}

/**
 * `make` of each record with from ≤ seq ≤ to of runs read from any shards, in seq order: what
 * a corrupt run's records throw, there or in `make`, is that run's DATA_LOSS.
 */
function fromRecords<T>(
  topic: RowOwner,
  runs: StoredRun[],
  from: number,
  to: number,
  make: (r: RunRecord) => T,
): T[] {
  runs.sort((a, b) => a.firstSeq - b.firstSeq);
  const out: T[] = [];
  for (const run of runs) {
    const made = parseRun(
      topic,
      run,
      from,
      to,
      () => decodeRun(run.body, run.ids, from, to, run.firstSeq).map(make),
      (r) => r.length,
    );
    for (const m of made) out.push(m);
  }
  return out;
}

/**
 * Format 2: the messages with from ≤ seq ≤ to of runs read from any shards, in seq order, their
 * metadata decoded here (strings not UTF-8 are the run's DATA_LOSS, not an exception later).
 */
export function messagesOfRuns(topic: RowOwner, runs: StoredRun[], from: number, to: number): LogMessage[] {
  return fromRecords(topic, runs, from, to, (r) => {
    const m = new LogMessage(r.seq, r.publishTime, r.data, r.meta);
    m.record = r.record;
    void m.attributes;
    return m;
  });
}

/** Format 2: the records with from ≤ seq ≤ to of runs read from any shards, as runs in seq order. */
export function indexedRunsOf(topic: RowOwner, runs: StoredRun[], from: number, to: number): IndexedRun[] {
  runs.sort((a, b) => a.firstSeq - b.firstSeq);
  const out: IndexedRun[] = [];
  for (const run of runs) {
    const r = parseRun(
      topic,
      run,
      from,
      to,
      () => copyStoredRange(run.firstSeq, run.body, run.ids, from, to),
      (r) => r?.offsets.length ?? 0,
    );
    if (r !== undefined) out.push(r);
  }
  return out;
}

/** Format 2: the ids of the messages with from ≤ seq ≤ to of runs, in seq order. */
export function idsOfRuns(topic: RowOwner, runs: StoredRun[], from: number, to: number): LoggedIds[] {
  return fromRecords(topic, runs, from, to, (r) => decodeIds(r.seq, r.publishTime, r.meta));
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
