import { invalidArgument, NerveBusError, seqText } from "./errors.js";
import type { LogMessage } from "./model.js";
import type { Store } from "./store.js";
import type { Topic } from "./topic.js";

/** Messages in one answer unless the caller asks for fewer or more (up to MAX_PAGE_SIZE). */
const DEFAULT_PAGE_SIZE = 100;
/** 1000: a page a person or a script reads; more is paging, not browsing. */
const MAX_PAGE_SIZE = 1000;
/** Messages one call examines unless the caller asks otherwise (up to MAX_SCAN_LIMIT). */
const DEFAULT_SCAN_LIMIT = 10_000;
/**
 * 100 000: a search reads every examined message from the store (payload included), so one
 * call must not read a whole large log; about a second of store reads on MariaDB.
 */
const MAX_SCAN_LIMIT = 100_000;
/** ~3 MiB of payload and metadata per page: below gRPC's default 4 MiB receive limit. */
const PAGE_BYTES = 3 << 20;
/** ~1 MiB per store read, whatever the message size, so a scan holds little at a time. */
const CHUNK_BYTES = 1 << 20;

/** A search of a topic's log. Every filter given must match; undefined ones match all. */
export interface MessageQuery {
  /** First and last seq to examine (0: the oldest retained / the last durable). */
  readonly fromSeq: number;
  readonly toSeq: number;
  /** Publish time bounds, ms since epoch (undefined: none). */
  readonly fromTime: number | undefined;
  readonly toTime: number | undefined;
  readonly orderingKey: string | undefined;
  readonly messageId: string | undefined;
  /** 32 lowercase hex digits. */
  readonly traceId: string | undefined;
  /** Each must be present with exactly this value. */
  readonly attributes: Readonly<Record<string, string>>;
  /** 0 for the defaults. */
  readonly pageSize: number;
  readonly scanLimit: number;
}

/** One page of a search. */
export interface MessagePage {
  readonly messages: LogMessage[];
  /** Where to go on (from_seq of the next call); 0 when the range is exhausted. */
  readonly nextSeq: number;
  /** Every seq up to here within the range has been examined. */
  readonly scannedThrough: number;
}

/** Checks the query's bounds; throws INVALID_ARGUMENT naming the field and its limit. */
function checkQuery(q: MessageQuery): { pageSize: number; scanLimit: number } {
  const pageSize = q.pageSize === 0 ? DEFAULT_PAGE_SIZE : q.pageSize;
  const scanLimit = q.scanLimit === 0 ? DEFAULT_SCAN_LIMIT : q.scanLimit;
  if (!Number.isSafeInteger(pageSize) || pageSize < 1 || pageSize > MAX_PAGE_SIZE)
    throw invalidArgument("page_size", `must be 1–${MAX_PAGE_SIZE}, got ${q.pageSize}`);
  if (!Number.isSafeInteger(scanLimit) || scanLimit < 1 || scanLimit > MAX_SCAN_LIMIT)
    throw invalidArgument(
      "scan_limit",
      `one call examines at most ${MAX_SCAN_LIMIT} messages, got ${q.scanLimit}; page on with next_seq`,
    );
  if (q.traceId !== undefined && !/^[0-9a-f]{32}$/.test(q.traceId))
    throw invalidArgument("trace_id", `must be 32 lowercase hex digits, got ${JSON.stringify(q.traceId)}`);
  if (q.toSeq > 0 && q.fromSeq > q.toSeq)
    throw invalidArgument("to_seq", `is below from_seq (${seqText(q.toSeq)} < ${seqText(q.fromSeq)})`);
  if (q.fromTime !== undefined && q.toTime !== undefined && q.fromTime > q.toTime)
    throw invalidArgument("to_time", "is before from_time");
  return { pageSize, scanLimit };
}

function matches(m: LogMessage, q: MessageQuery): boolean {
  if (q.orderingKey !== undefined && m.orderingKey !== q.orderingKey) return false;
  if (q.messageId !== undefined && m.messageId !== q.messageId) return false;
  if (q.traceId !== undefined && m.traceId !== q.traceId) return false;
  const want = Object.entries(q.attributes);
  if (want.length === 0) return true;
  const have = m.attributes;
  return want.every(([k, v]) => Object.hasOwn(have, k) && have[k] === v);
}

/**
 * Searches a topic's durable log without consuming anything: reads bounded chunks (about 1 MiB
 * each, from the tail cache when it holds them) of at most `scanLimit` seqs from the start of
 * the range and keeps the matches. Works the same on both stores and both log formats, since it
 * reads through the store's readMessages. Publish times rise with seqs, so a time range becomes
 * a seq range: its start by binary search, its end where the first later message is met.
 * Throws INVALID_ARGUMENT for bounds over their limits, FAILED_PRECONDITION for an ephemeral
 * topic, and store errors as they come.
 */
export async function browseMessages(topic: Topic, store: Store, q: MessageQuery): Promise<MessagePage> {
  const { pageSize, scanLimit } = checkQuery(q);
  if (topic.ephemeral)
    throw new NerveBusError(
      "failed_precondition",
      `topic ${topic.record.name} is ephemeral: it stores no messages to browse`,
    );
  const watermark = topic.watermark;
  const firstSeq = await store.firstSeq(topic.record);
  let start = Math.max(q.fromSeq, firstSeq, 1);
  const end = q.toSeq === 0 ? watermark : Math.min(q.toSeq, watermark);
  const done: MessagePage = { messages: [], nextSeq: 0, scannedThrough: end };
  if (firstSeq === 0 || start > end) return done;
  if (q.fromTime !== undefined) {
    const atTime = await topic.seqAtTime(q.fromTime);
    if (atTime === 0) return done;
    start = Math.max(start, atTime);
    if (start > end) return done;
  }
  const scanEnd = Math.min(end, start + scanLimit - 1);
  const average = await store.averageRowBytes(topic.record, 100);
  const chunk = Math.max(16, Math.min(1000, Math.floor(CHUNK_BYTES / Math.max(1, average))));
  const out: LogMessage[] = [];
  let bytes = 0;
  for (let seq = start; seq <= scanEnd; ) {
    const to = Math.min(scanEnd, seq + chunk - 1);
    for (const m of await topic.read(seq, to)) {
      if (q.toTime !== undefined && m.publishTime > q.toTime)
        return { messages: out, nextSeq: 0, scannedThrough: end };
      if (!matches(m, q)) continue;
      out.push(m);
      bytes += m.bytes;
      if (out.length >= pageSize || bytes >= PAGE_BYTES) {
        const next = m.seq < end ? m.seq + 1 : 0;
        return { messages: out, nextSeq: next, scannedThrough: m.seq };
      }
    }
    seq = to + 1;
  }
  return { messages: out, nextSeq: scanEnd < end ? scanEnd + 1 : 0, scannedThrough: scanEnd };
}
