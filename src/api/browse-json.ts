import {
  type Broker,
  type DeliveryState,
  invalidArgument,
  type LogMessage,
  type MessageQuery,
} from "../core/index.js";
import { timeField } from "./timestamp-field.js";

/** Payload bytes a listed message shows (as text); the one-message view shows more. */
const LIST_PREVIEW_BYTES = 1024;
/** 64 KiB: enough to read a JSON or text payload whole, bounded for a page to render. */
const ONE_PREVIEW_BYTES = 64 << 10;

function whole(q: URLSearchParams, name: string): number {
  const v = q.get(name);
  if (v === null || v === "") return 0;
  if (!/^\d{1,15}$/.test(v))
    throw invalidArgument(name, `expected a whole number, got ${JSON.stringify(v.slice(0, 40))}`);
  return Number(v);
}

function time(q: URLSearchParams, name: string): number | undefined {
  const v = q.get(name);
  if (v === null || v === "") return undefined;
  const ms = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
  if (Number.isNaN(ms))
    throw invalidArgument(
      name,
      `expected an ISO time or ms since the epoch, got ${JSON.stringify(v.slice(0, 40))}`,
    );
  return timeField(name, ms, v);
}

/**
 * The query of GET /api/topics/T/messages: from_seq, to_seq, since, until (ISO or ms),
 * ordering_key, message_id, trace_id, attr=K=V (repeatable), page_size, scan_limit. Throws
 * INVALID_ARGUMENT (400) naming a malformed parameter.
 */
export function queryFromParams(q: URLSearchParams): MessageQuery {
  const text = (name: string) => {
    const v = q.get(name);
    return v === null || v === "" ? undefined : v;
  };
  const attributes: Record<string, string> = {};
  for (const pair of q.getAll("attr")) {
    const eq = pair.indexOf("=");
    if (eq <= 0)
      throw invalidArgument("attr", `expected KEY=VALUE, got ${JSON.stringify(pair.slice(0, 80))}`);
    attributes[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return {
    fromSeq: whole(q, "from_seq"),
    toSeq: whole(q, "to_seq"),
    fromTime: time(q, "since"),
    toTime: time(q, "until"),
    orderingKey: text("ordering_key"),
    messageId: text("message_id"),
    traceId: text("trace_id")?.toLowerCase(),
    attributes,
    pageSize: whole(q, "page_size"),
    scanLimit: whole(q, "scan_limit"),
  };
}

/**
 * A message as the page shows it: the payload as UTF-8 text (invalid bytes replaced), cut at
 * `preview` bytes, with its full size.
 */
function messageJson(m: LogMessage, preview: number, deliveries: readonly DeliveryState[] | undefined) {
  const data = Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength);
  return {
    seq: m.seq,
    publishTime: m.publishTime,
    orderingKey: m.orderingKey,
    messageId: m.messageId,
    traceId: m.traceId,
    attributes: m.attributes,
    dataBytes: data.byteLength,
    dataText: data.subarray(0, preview).toString("utf8"),
    dataTruncated: data.byteLength > preview,
    deliveries,
  };
}

/** GET /api/topics/T/messages: one page of a search (see Broker.browseMessages), with deliveries when `deliveries=1`. */
export async function listMessagesJson(
  broker: Broker,
  topic: string,
  q: URLSearchParams,
  visible: (subscription: string) => boolean,
) {
  const page = await broker.browseMessages(topic, queryFromParams(q));
  const withDeliveries = q.get("deliveries") === "1";
  const deliveries = withDeliveries
    ? await broker.deliveries(
        topic,
        page.messages.map((m) => m.seq),
        visible,
      )
    : undefined;
  return {
    topic,
    messages: page.messages.map((m) => messageJson(m, LIST_PREVIEW_BYTES, deliveries?.get(m.seq))),
    nextSeq: page.nextSeq,
    scannedThrough: page.scannedThrough,
  };
}

/** GET /api/topics/T/messages/SEQ: one message and its state on each visible subscription. */
export async function getMessageJson(
  broker: Broker,
  topic: string,
  seqText: string,
  visible: (subscription: string) => boolean,
) {
  if (!/^[1-9]\d{0,15}$/.test(seqText))
    throw invalidArgument("seq", `expected a seq ≥ 1, got ${JSON.stringify(seqText.slice(0, 40))}`);
  const m = await broker.getMessage(topic, Number(seqText));
  const deliveries = await broker.deliveries(topic, [m.seq], visible);
  return { topic, message: messageJson(m, ONE_PREVIEW_BYTES, deliveries.get(m.seq)) };
}
