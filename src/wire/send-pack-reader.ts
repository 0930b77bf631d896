import { isUtf8 } from "node:buffer";
import { Pack, PackColumns } from "./pack.js";
import { timestampProblem } from "./timestamp-range.js";
import { newTraceparent } from "./trace-context.js";
import {
  ByteView,
  copyBytes,
  copyViews,
  WIRE_LEN,
  WIRE_VARINT,
  WireError,
  WireReader,
  writeVarint,
} from "./wire-format.js";

/** A SendPackRequest as read by readSendPack: its topic and its messages as a Pack. */
export interface SendPackBytes {
  readonly topic: string;
  readonly pack: Pack;
  /** Why the bytes are not a valid SendPackRequest, when they are not. */
  readonly malformed?: string;
}

// nervebus.v1.Message fields 1–4 become Delivery fields 2–5: the same bytes, tag + 8.
const TAG_DATA = (1 << 3) | WIRE_LEN;
const TAG_ATTRIBUTE = (2 << 3) | WIRE_LEN;
const TAG_ORDERING_KEY = (3 << 3) | WIRE_LEN;
const TAG_MESSAGE_ID = (4 << 3) | WIRE_LEN;
const TAG_DELIVER_AT = (5 << 3) | WIRE_LEN;
const TAG_DELAY = (6 << 3) | WIRE_LEN;
const TAG_PRIORITY = (7 << 3) | WIRE_VARINT;
/** Delivery.priority (9), stored for urgent (1) and bulk (3) only, as message-meta.ts writes it. */
const TAG_DELIVERY_PRIORITY = (9 << 3) | WIRE_VARINT;
const TO_DELIVERY = 1 << 3;
const TAG_TRACE_ID = (8 << 3) | WIRE_LEN;
const TRACEPARENT = Buffer.from("traceparent");
/** The attribute entry the broker adds to a message without trace context, before its value. */
const ADDED_ENTRY_HEAD = Buffer.from([
  TAG_ATTRIBUTE + TO_DELIVERY,
  2 + 11 + 2 + 55,
  0x0a,
  11,
  ...TRACEPARENT,
  0x12,
  55,
]);
const ADDED_HEAD_VIEW = new ByteView(ADDED_ENTRY_HEAD);
/** Metadata bytes a message may gain: the added traceparent entry and the trace id field. */
const ADDED_MAX = ADDED_ENTRY_HEAD.length + 55 + 34 + 2;

/** Whether buf[s, e) is UTF-8; ASCII (the usual case) without a native call. */
function utf8At(buf: Buffer, s: number, e: number): boolean {
  for (let i = s; i < e; i++) if (buf[i]! > 127) return isUtf8(buf.subarray(s, e));
  return true;
}

/** 1 for the bytes of lowercase hex digits. */
const HEX = new Uint8Array(256);
for (const c of "0123456789abcdef") HEX[c.charCodeAt(0)] = 1;

function isHex(buf: Buffer, s: number, e: number): boolean {
  let ok = 1;
  for (let i = s; i < e; i++) ok &= HEX[buf[i]!]!;
  return ok === 1;
}

/** Whether buf[s, e) is the key `traceparent` (a loop: Buffer#compare is a native call). */
function isTraceparentKey(buf: Buffer, s: number, e: number): boolean {
  if (e - s !== 11) return false;
  for (let i = 0; i < 11; i++) if (buf[s + i] !== TRACEPARENT[i]) return false;
  return true;
}

/** Whether buf[s, s + 55) is a valid traceparent with a non-zero trace id (trace-context.ts's rule, on bytes). */
function validTraceparent(buf: Buffer, s: number, e: number): boolean {
  if (e - s !== 55) return false;
  if (buf[s + 2] !== 45 || buf[s + 35] !== 45 || buf[s + 52] !== 45) return false;
  if (
    !isHex(buf, s, s + 2) ||
    !isHex(buf, s + 3, s + 35) ||
    !isHex(buf, s + 36, s + 52) ||
    !isHex(buf, s + 53, s + 55)
  )
    return false;
  for (let i = s + 3; i < s + 35; i++) if (buf[i] !== 48) return true;
  return false;
}

/** An int64 (or int32) varint as a number, negatives (ten bytes, two's complement) included. */
function int64(r: WireReader): number {
  const start = r.pos;
  const v = r.varint();
  if (r.pos - start < 9) return v;
  let x = 0n;
  for (let p = start, shift = 0n; p < r.pos; p++, shift += 7n) x |= BigInt(r.buf[p]! & 127) << shift;
  return Number(BigInt.asIntN(64, x));
}

/** The seconds (1) and nanos (2) of a google.protobuf.Timestamp or Duration in buf[s, e). */
function secondsNanos(buf: Buffer, s: number, e: number): { seconds: number; nanos: number } {
  const r = new WireReader(buf, s, e);
  let seconds = 0;
  let nanos = 0;
  while (!r.done) {
    const tag = r.tag();
    if (tag === ((1 << 3) | WIRE_VARINT)) seconds = int64(r);
    else if (tag === ((2 << 3) | WIRE_VARINT)) nanos = int64(r);
    else r.skip(tag & 7);
  }
  return { seconds, nanos };
}

/** ms since the epoch of the google.protobuf.Timestamp in buf[s, e), the field `field`: it must be one (timestampProblem). */
function timestampMillis(buf: Buffer, s: number, e: number, field: string): number {
  const { seconds, nanos } = secondsNanos(buf, s, e);
  const bad = timestampProblem(seconds, nanos);
  if (bad !== undefined) throw new WireError(`${field}.${bad.part}: ${bad.why}`);
  return seconds * 1000 + Math.round(nanos / 1_000_000);
}

/**
 * ms of the google.protobuf.Duration in buf[s, e), the field `field`. Its nanos must be
 * -999,999,999 to 999,999,999: more is not a Duration, and was read as that many more ms.
 */
function durationMillis(buf: Buffer, s: number, e: number, field: string): number {
  const { seconds, nanos } = secondsNanos(buf, s, e);
  if (nanos < -999_999_999 || nanos > 999_999_999)
    throw new WireError(`${field}.nanos: must be -999999999 to 999999999, got ${nanos}`);
  return seconds * 1000 + Math.round(nanos / 1_000_000);
}

/**
 * Reads a SendPackRequest (topic = 1, messages = 2) straight into a Pack: each message's
 * payload stays where it is in `buf`; its attributes, ordering key and message id are copied
 * as they are into the pack's metadata with their field numbers moved to Delivery's, followed
 * by a `traceparent` the broker adds when there is none and the trace id. Strings are checked
 * for UTF-8 as protobuf requires. An attribute key starting with `reservedPrefix` is noted
 * (the core refuses it). Bytes that are not a valid request give `malformed`.
 */
export function readSendPack(buf: Buffer, reservedPrefix: string): SendPackBytes {
  try {
    return read(buf, Buffer.from(reservedPrefix));
  } catch (err) {
    return { topic: "", pack: emptyPack(), malformed: err instanceof Error ? err.message : String(err) };
  }
}

function emptyPack(): Pack {
  return new Pack(0, Buffer.alloc(0), Buffer.alloc(0), new PackColumns(0), {});
}

/** 4 MiB: what the scratch buffer may keep for good; larger requests get one of their own. */
const MAX_SCRATCH = 4 << 20;
/** Where readSendPack notes each message's bounds in the request (start, end), reused. */
let bounds = new Uint32Array(2048);
const MAX_BOUNDS = 1 << 17;
/** Where readSendPack writes metadata before copying it out. */
let scratch = Buffer.allocUnsafe(64 << 10);

function read(buf: Buffer, prefix: Buffer): SendPackBytes {
  // First pass: the topic and where each message is.
  const r = new WireReader(buf);
  let topic = "";
  let count = 0;
  let bodies = bounds;
  while (!r.done) {
    const tag = r.tag();
    if (tag === ((1 << 3) | WIRE_LEN)) topic = r.string("topic");
    else if (tag === ((2 << 3) | WIRE_LEN)) {
      const s = r.lenStart();
      if (2 * count + 2 > bodies.length) {
        const grown = new Uint32Array(bodies.length * 2);
        grown.set(bodies);
        bodies = grown;
        // Kept for the next requests while small (a pack of 64k messages takes 512 KiB).
        if (bodies.length <= MAX_BOUNDS) bounds = bodies;
      }
      bodies[2 * count] = s;
      bodies[2 * count + 1] = r.pos;
      count++;
    } else r.skip(tag & 7);
  }
  const c = new PackColumns(count);
  const {
    dataStart,
    dataEnd,
    metaStart,
    metaEnd,
    traced,
    sentBytes,
    storedBytes,
    keyBytes,
    idBytes,
    priority,
  } = c;
  let messageIds: string[] | undefined;
  let sentDeliverAt: Float64Array | undefined;
  let sentDelay: Float64Array | undefined;
  let reservedKey: { index: number; key: string } | undefined;
  let badPriority: { index: number; value: number } | undefined;
  // Metadata is never longer than the request plus what the broker adds per message. It is
  // written into a scratch buffer reused by every request and copied out at its exact size:
  // a pack waiting for room in the write budget holds its metadata, not twice its request.
  const bound = buf.length + count * ADDED_MAX;
  if (scratch.length < bound && bound <= MAX_SCRATCH) scratch = Buffer.allocUnsafe(MAX_SCRATCH);
  const meta = bound <= scratch.length ? scratch : Buffer.allocUnsafe(bound);
  const bufView = new ByteView(buf);
  const metaView = new ByteView(meta);
  let pos = 0;
  // One reader for the messages and one for attribute entries, moved along: no object per
  // message or field (this loop runs for every message published).
  const m = new WireReader(buf);
  const entry = new WireReader(buf);
  for (let i = 0; i < count; i++) {
    m.pos = bodies[2 * i]!;
    m.end = bodies[2 * i + 1]!;
    let ds = 0;
    let de = 0;
    let ks = 0;
    let ke = 0;
    let is = 0;
    let ie = 0;
    let ts = -1;
    let sent = 0;
    metaStart[i] = pos;
    while (!m.done) {
      const tag = m.tag();
      switch (tag) {
        case TAG_DATA:
          ds = m.lenStart();
          de = m.pos;
          break;
        case TAG_ATTRIBUTE: {
          const at = m.pos;
          entry.pos = m.lenStart();
          entry.end = m.pos;
          const e = m.pos;
          let kS = 0;
          let kE = 0;
          let vS = 0;
          let vE = 0;
          while (!entry.done) {
            const t = entry.tag();
            if (t === ((1 << 3) | WIRE_LEN)) {
              kS = entry.lenStart();
              kE = entry.pos;
            } else if (t === ((2 << 3) | WIRE_LEN)) {
              vS = entry.lenStart();
              vE = entry.pos;
            } else entry.skip(t & 7);
          }
          sent += kE - kS + (vE - vS);
          // A valid traceparent (the usual attribute) is ASCII by its own check.
          const isTraceparent = isTraceparentKey(buf, kS, kE);
          const traceOk = isTraceparent && validTraceparent(buf, vS, vE);
          if (!traceOk) {
            if (!utf8At(buf, kS, kE))
              throw new WireError(`messages[${i}]: an attribute key is not valid UTF-8`);
            if (!utf8At(buf, vS, vE))
              throw new WireError(
                `messages[${i}]: attribute ${JSON.stringify(buf.toString("utf8", kS, kE))}'s value is not valid UTF-8`,
              );
          }
          if (isTraceparent) ts = traceOk ? vS : -2;
          else if (
            reservedKey === undefined &&
            kE - kS >= prefix.length &&
            buf.compare(prefix, 0, prefix.length, kS, kS + prefix.length) === 0
          )
            reservedKey = { index: i, key: buf.toString("utf8", kS, kE) };
          meta[pos++] = TAG_ATTRIBUTE + TO_DELIVERY;
          pos = copyViews(bufView, at, e, metaView, pos);
          break;
        }
        case TAG_ORDERING_KEY:
          ks = m.lenStart();
          ke = m.pos;
          if (!utf8At(buf, ks, ke)) throw new WireError(`messages[${i}]: ordering_key is not valid UTF-8`);
          break;
        case TAG_MESSAGE_ID:
          is = m.lenStart();
          ie = m.pos;
          if (!utf8At(buf, is, ie)) throw new WireError(`messages[${i}]: message_id is not valid UTF-8`);
          break;
        case TAG_DELIVER_AT: {
          const s = m.lenStart();
          sentDeliverAt ??= new Float64Array(count);
          sentDeliverAt[i] = timestampMillis(buf, s, m.pos, `messages[${i}].deliver_at`);
          break;
        }
        case TAG_PRIORITY: {
          // An enum: 1 urgent, 3 bulk are stored; 0 (unset) and 2 (normal) are the default.
          const v = int64(m);
          if (v === 1 || v === 3) priority[i] = v;
          else if (v === 0 || v === 2) priority[i] = 0;
          else badPriority ??= { index: i, value: v };
          break;
        }
        case TAG_DELAY: {
          const s = m.lenStart();
          sentDelay ??= new Float64Array(count).fill(Number.NaN);
          sentDelay[i] = durationMillis(buf, s, m.pos, `messages[${i}].delay`);
          break;
        }
        default:
          m.skip(tag & 7);
      }
    }
    dataStart[i] = ds;
    dataEnd[i] = de;
    keyBytes[i] = ke - ks;
    idBytes[i] = ie - is;
    sent += de - ds + (ke - ks) + (ie - is);
    sentBytes[i] = sent;
    let traceAt = ts;
    let traceBuf = bufView;
    if (ts === -1) {
      // No trace context: the broker starts one, so SendPack can return it and deliveries carry it.
      pos = copyViews(ADDED_HEAD_VIEW, 0, ADDED_ENTRY_HEAD.length, metaView, pos);
      traceAt = pos;
      traceBuf = metaView;
      pos += meta.write(newTraceparent(), pos, 55, "latin1");
      sent += 11 + 55;
    }
    storedBytes[i] = sent;
    if (ke > ks) pos = copyField(meta, pos, TAG_ORDERING_KEY + TO_DELIVERY, buf, ks, ke);
    if (ie > is) {
      pos = copyField(meta, pos, TAG_MESSAGE_ID + TO_DELIVERY, buf, is, ie);
      messageIds ??= new Array<string>(count).fill("");
      messageIds[i] = buf.toString("utf8", is, ie);
    }
    if (priority[i] !== 0) {
      meta[pos++] = TAG_DELIVERY_PRIORITY;
      meta[pos++] = priority[i]!;
    }
    // The trace id goes last, where Pack.traceId finds it.
    if (traceAt >= 0) {
      meta[pos++] = TAG_TRACE_ID;
      meta[pos++] = 32;
      pos = copyViews(traceBuf, traceAt + 3, traceAt + 35, metaView, pos);
      traced[i] = 1;
    }
    metaEnd[i] = pos;
  }
  const extras = { messageIds, sentDeliverAt, sentDelay, reservedKey, badPriority };
  return { topic, pack: new Pack(count, buf, Buffer.from(meta.subarray(0, pos)), c, extras) };
}

function copyField(dst: Buffer, pos: number, tag: number, src: Buffer, s: number, e: number): number {
  dst[pos++] = tag;
  pos = writeVarint(dst, pos, e - s);
  return copyBytes(src, s, e, dst, pos);
}
