import { traceIdOf } from "./trace-context.js";
import {
  lenFieldSize,
  varintSize,
  WIRE_LEN,
  WIRE_VARINT,
  WireReader,
  writeStringField,
  writeVarint,
} from "./wire-format.js";

/**
 * A message's metadata as it is stored beside its payload, and as it goes out: protobuf wire
 * fields numbered as in `nervebus.v1.Delivery` (3 attributes, 4 ordering_key, 5 message_id,
 * 8 trace_id, 9 priority), so a delivery copies the stored bytes as they are, with no decoding, no objects
 * and no re-encoding. A delayed message's schedule id (internal, never delivered) rides in front
 * as field 15.
 *
 * Rows written before this format hold JSON (`{"a":{…},"k":…,"i":…,"s":…}`); they start with
 * `{`, which is never the first byte of this format (0x7b would be field 15 as a group), and
 * are still read.
 */
const F_ATTRIBUTES = 3;
const F_ORDERING_KEY = 4;
const F_MESSAGE_ID = 5;
const F_TRACE_ID = 8;
/** Delivery.priority; written only for urgent (1) and bulk (3), so normal messages cost nothing. */
const TAG_PRIORITY = (9 << 3) | WIRE_VARINT;
const PRIORITY_URGENT = 1;
const PRIORITY_BULK = 3;

/** How soon subscribers get a message; "normal" unless its producer said otherwise. */
export type Priority = "urgent" | "normal" | "bulk";
const TAG_SCHEDULE_ID = (15 << 3) | WIRE_VARINT;
const JSON_START = 0x7b;

/** The decoded metadata of a message. */
export interface MetaFields {
  readonly attributes: Record<string, string>;
  readonly orderingKey: string;
  readonly messageId: string;
  /** Hex trace id of the message's traceparent; "" when it has none. */
  readonly traceId: string;
  readonly scheduleId: number | undefined;
  readonly priority: Priority;
}

/**
 * Sets an attribute read off the wire. A key "__proto__" is an ordinary attribute, not the
 * object's prototype.
 */
function setAttribute(attributes: Record<string, string>, key: string, value: string): void {
  if (key === "__proto__")
    Object.defineProperty(attributes, key, { value, enumerable: true, writable: true, configurable: true });
  else attributes[key] = value;
}

/**
 * Reads the map<string, string> entry at the reader (a length-delimited field: key = 1,
 * value = 2, either may be absent) into `attributes`.
 */
export function readAttribute(r: WireReader, attributes: Record<string, string>): void {
  const [start, end] = r.lenRange();
  const e = new WireReader(r.buf, start, end);
  let key = "";
  let value = "";
  while (!e.done) {
    const t = e.tag();
    if (t === ((1 << 3) | WIRE_LEN)) key = e.string("an attribute key");
    else if (t === ((2 << 3) | WIRE_LEN)) value = e.string(`attribute ${JSON.stringify(key)}'s value`);
    else e.skip(t & 7); // unknown fields are skipped, as protobuf requires
  }
  setAttribute(attributes, key, value);
}

/** What encodeMeta needs of a message. */
export interface MetaSource {
  readonly attributes: Record<string, string>;
  readonly orderingKey: string;
  readonly messageId: string;
  /** Undefined means normal. */
  readonly priority?: Priority;
}

/** Encodes a message's metadata (see above). `traceId` is "" when the message has none. */
export function encodeMeta(m: MetaSource, traceId: string, scheduleId?: number): Buffer {
  const attrs = m.attributes;
  let size = scheduleId === undefined ? 0 : 1 + varintSize(scheduleId);
  // UTF-8 lengths, computed once for the size and again for writing would cost twice.
  const lens: number[] = [];
  for (const k in attrs) {
    const kl = Buffer.byteLength(k);
    const vl = Buffer.byteLength(attrs[k]!);
    const entry = lenFieldSize(kl) + lenFieldSize(vl);
    lens.push(kl, vl, entry);
    size += lenFieldSize(entry);
  }
  const okLen = m.orderingKey === "" ? 0 : Buffer.byteLength(m.orderingKey);
  const idLen = m.messageId === "" ? 0 : Buffer.byteLength(m.messageId);
  if (okLen > 0) size += lenFieldSize(okLen);
  if (idLen > 0) size += lenFieldSize(idLen);
  if (traceId !== "") size += lenFieldSize(traceId.length);
  const priority = m.priority === "urgent" ? PRIORITY_URGENT : m.priority === "bulk" ? PRIORITY_BULK : 0;
  if (priority !== 0) size += 2;
  const buf = Buffer.allocUnsafe(size);
  let pos = 0;
  if (scheduleId !== undefined) {
    buf[pos++] = TAG_SCHEDULE_ID;
    pos = writeVarint(buf, pos, scheduleId);
  }
  let i = 0;
  for (const k in attrs) {
    buf[pos++] = (F_ATTRIBUTES << 3) | WIRE_LEN;
    pos = writeVarint(buf, pos, lens[i + 2]!);
    pos = writeStringField(buf, pos, 1, k, lens[i]!);
    pos = writeStringField(buf, pos, 2, attrs[k]!, lens[i + 1]!);
    i += 3;
  }
  if (okLen > 0) pos = writeStringField(buf, pos, F_ORDERING_KEY, m.orderingKey, okLen);
  if (idLen > 0) pos = writeStringField(buf, pos, F_MESSAGE_ID, m.messageId, idLen);
  if (traceId !== "") pos = writeStringField(buf, pos, F_TRACE_ID, traceId, traceId.length);
  if (priority !== 0) {
    buf[pos++] = TAG_PRIORITY;
    buf[pos++] = priority;
  }
  return buf;
}

type LegacyMeta = { a?: Record<string, string>; k?: string; i?: string; s?: number };

function decodeLegacy(buf: Buffer): MetaFields {
  const m = JSON.parse(buf.toString("utf8")) as LegacyMeta;
  const attributes = m.a ?? {};
  return {
    attributes,
    orderingKey: m.k ?? "",
    messageId: m.i ?? "",
    traceId: traceIdOf(attributes.traceparent) ?? "",
    scheduleId: m.s,
    priority: "normal",
  };
}

/** Decodes stored metadata (either format). */
export function decodeMeta(buf: Buffer): MetaFields {
  if (buf.length > 0 && buf[0] === JSON_START) return decodeLegacy(buf);
  const r = new WireReader(buf);
  const attributes: Record<string, string> = {};
  let orderingKey = "";
  let messageId = "";
  let traceId = "";
  let scheduleId: number | undefined;
  let priority: Priority = "normal";
  while (!r.done) {
    const tag = r.tag();
    switch (tag) {
      case TAG_SCHEDULE_ID:
        scheduleId = r.varint();
        break;
      case TAG_PRIORITY: {
        const v = r.varint();
        priority = v === PRIORITY_URGENT ? "urgent" : v === PRIORITY_BULK ? "bulk" : "normal";
        break;
      }
      case (F_ATTRIBUTES << 3) | WIRE_LEN:
        readAttribute(r, attributes);
        break;
      case (F_ORDERING_KEY << 3) | WIRE_LEN:
        orderingKey = r.string();
        break;
      case (F_MESSAGE_ID << 3) | WIRE_LEN:
        messageId = r.string();
        break;
      case (F_TRACE_ID << 3) | WIRE_LEN:
        traceId = r.string();
        break;
      default:
        r.skip(tag & 7);
    }
  }
  return { attributes, orderingKey, messageId, traceId, scheduleId, priority };
}

/**
 * The bytes limits and windows count for the metadata (UTF-8 bytes of attribute keys and
 * values, ordering key and message id; not the trace id, which the broker derives), read from
 * the lengths alone.
 */
export function metaContentBytes(buf: Buffer): number {
  if (buf.length > 0 && buf[0] === JSON_START) {
    const m = decodeLegacy(buf);
    let n = Buffer.byteLength(m.orderingKey) + Buffer.byteLength(m.messageId);
    for (const k in m.attributes) n += Buffer.byteLength(k) + Buffer.byteLength(m.attributes[k]!);
    return n;
  }
  const r = new WireReader(buf);
  let n = 0;
  while (!r.done) {
    const tag = r.tag();
    if (tag === ((F_ATTRIBUTES << 3) | WIRE_LEN)) {
      const [start, end] = r.lenRange();
      const e = new WireReader(buf, start, end);
      while (!e.done) {
        const t = e.tag();
        if ((t & 7) === WIRE_LEN) {
          const [s, x] = e.lenRange();
          n += x - s;
        } else e.skip(t & 7);
      }
    } else if (tag === ((F_ORDERING_KEY << 3) | WIRE_LEN) || tag === ((F_MESSAGE_ID << 3) | WIRE_LEN)) {
      const [s, e] = r.lenRange();
      n += e - s;
    } else r.skip(tag & 7);
  }
  return n;
}

/**
 * The ids the deduplication indexes need, without decoding anything else: most messages have
 * neither, and start-up reads the ids of every recent row.
 */
export function metaIds(buf: Buffer): { messageId: string; scheduleId: number | undefined } {
  if (buf.length > 0 && buf[0] === JSON_START) {
    const m = decodeLegacy(buf);
    return { messageId: m.messageId, scheduleId: m.scheduleId };
  }
  const r = new WireReader(buf);
  let scheduleId: number | undefined;
  while (!r.done) {
    const tag = r.tag();
    if (tag === TAG_SCHEDULE_ID) scheduleId = r.varint();
    else if (tag === ((F_MESSAGE_ID << 3) | WIRE_LEN)) return { messageId: r.string(), scheduleId };
    else r.skip(tag & 7);
  }
  return { messageId: "", scheduleId };
}

/**
 * The metadata as `Delivery` fields, ready to copy into a delivery: the stored bytes without
 * the schedule id (a view, no copy), or a re-encoding of a JSON row.
 */
export function deliveryMeta(buf: Buffer): Buffer {
  if (buf.length === 0) return buf;
  if (buf[0] === JSON_START) {
    const m = decodeLegacy(buf);
    return encodeMeta(m, m.traceId);
  }
  if (buf[0] !== TAG_SCHEDULE_ID) return buf;
  const r = new WireReader(buf, 1);
  r.varint();
  return buf.subarray(r.pos);
}

/** The schedule id a message's stored metadata leads with, if any. */
export function scheduleIdOf(buf: Buffer): number | undefined {
  if (buf.length === 0) return undefined;
  if (buf[0] === JSON_START) return decodeLegacy(buf).scheduleId;
  if (buf[0] !== TAG_SCHEDULE_ID) return undefined;
  return new WireReader(buf, 1).varint();
}

/** Stored metadata with `scheduleId` in front of Delivery-form fields (the inverse of deliveryMeta). */
export function withScheduleId(meta: Buffer, scheduleId: number): Buffer {
  const head = Buffer.allocUnsafe(1 + varintSize(scheduleId));
  head[0] = TAG_SCHEDULE_ID;
  writeVarint(head, 1, scheduleId);
  return Buffer.concat([head, meta]);
}
