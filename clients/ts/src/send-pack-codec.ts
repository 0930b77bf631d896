import { toBinary } from "@bufbuild/protobuf";
import type { Duration, Timestamp } from "@bufbuild/protobuf/wkt";
import type { Message } from "./gen/nervebus/v1/message_pb.js";
import {
  type PublishRequest,
  PublishRequestSchema,
  type SendPackRequest,
} from "./gen/nervebus/v1/publisher_pb.js";

/*
 * SendPackRequest (and a Publish stream's batches, the same fields) written by hand: protobuf-es's writer (reflection per field, a chunk list per
 * message) and the message objects it needs were a fifth of a publisher's CPU
 * (clients/ts/bench). The bytes decode to the same request (test/send-pack-codec.test.ts).
 */

/** Bytes of the varint of a non-negative integer below 2^53. */
function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

/** Writes the varint of a non-negative integer below 2^53 at out[pos]; returns the position after it. */
function writeVarint(out: Buffer, pos: number, n: number): number {
  while (n >= 0x80) {
    out[pos++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  out[pos++] = n;
  return pos;
}

/** The varint bytes of a signed 64-bit integer (ten bytes when negative, two's complement). */
function int64Bytes(v: bigint): Buffer {
  let u = BigInt.asUintN(64, v);
  const out: number[] = [];
  while (u >= 0x80n) {
    out.push(Number(u & 0x7fn) | 0x80);
    u >>= 7n;
  }
  out.push(Number(u));
  return Buffer.from(out);
}

/** The body of a Timestamp or Duration (seconds = 1, nanos = 2; zero fields left out). */
function secondsNanos(t: Timestamp | Duration): Buffer {
  const parts: Buffer[] = [];
  if (t.seconds !== 0n) parts.push(Buffer.from([1 << 3]), int64Bytes(t.seconds));
  if (t.nanos !== 0) parts.push(Buffer.from([2 << 3]), int64Bytes(BigInt(t.nanos)));
  return Buffer.concat(parts);
}

/** A message's fields measured once, then written. */
interface Sized {
  readonly m: Message;
  readonly size: number;
  /** UTF-8 lengths of each attribute's key and value, in the attributes' own order. */
  readonly attributeLengths: number[];
  readonly orderingKey: number;
  readonly messageId: number;
  readonly deliverAt: Buffer | undefined;
  readonly delay: Buffer | undefined;
}

function measure(m: Message): Sized {
  let size = 0;
  if (m.data.length > 0) size += 1 + varintSize(m.data.length) + m.data.length;
  const attributeLengths: number[] = [];
  for (const key in m.attributes) {
    const k = Buffer.byteLength(key);
    const v = Buffer.byteLength(m.attributes[key]!);
    attributeLengths.push(k, v);
    const entry = 1 + varintSize(k) + k + 1 + varintSize(v) + v;
    size += 1 + varintSize(entry) + entry;
  }
  const orderingKey = Buffer.byteLength(m.orderingKey);
  if (orderingKey > 0) size += 1 + varintSize(orderingKey) + orderingKey;
  const messageId = Buffer.byteLength(m.messageId);
  if (messageId > 0) size += 1 + varintSize(messageId) + messageId;
  const deliverAt = m.deliverAt === undefined ? undefined : secondsNanos(m.deliverAt);
  if (deliverAt !== undefined) size += 1 + varintSize(deliverAt.length) + deliverAt.length;
  const delay = m.delay === undefined ? undefined : secondsNanos(m.delay);
  if (delay !== undefined) size += 1 + varintSize(delay.length) + delay.length;
  if (m.priority !== 0) size += 1 + (m.priority < 0 ? 10 : varintSize(m.priority));
  return { m, size, attributeLengths, orderingKey, messageId, deliverAt, delay };
}

function writeBytes(out: Buffer, pos: number, tag: number, bytes: Uint8Array): number {
  out[pos++] = tag;
  pos = writeVarint(out, pos, bytes.length);
  out.set(bytes, pos);
  return pos + bytes.length;
}

function writeString(out: Buffer, pos: number, tag: number, s: string, length: number): number {
  out[pos++] = tag;
  pos = writeVarint(out, pos, length);
  return pos + out.write(s, pos, length, "utf8");
}

function writeMessage(out: Buffer, pos: number, s: Sized): number {
  const { m } = s;
  if (m.data.length > 0) pos = writeBytes(out, pos, (1 << 3) | 2, m.data);
  // The attributes in the order measure() saw them (an object's key order does not change).
  let i = 0;
  for (const key in m.attributes) {
    const k = s.attributeLengths[i++]!;
    const v = s.attributeLengths[i++]!;
    out[pos++] = (2 << 3) | 2;
    pos = writeVarint(out, pos, 1 + varintSize(k) + k + 1 + varintSize(v) + v);
    pos = writeString(out, pos, (1 << 3) | 2, key, k);
    pos = writeString(out, pos, (2 << 3) | 2, m.attributes[key]!, v);
  }
  if (s.orderingKey > 0) pos = writeString(out, pos, (3 << 3) | 2, m.orderingKey, s.orderingKey);
  if (s.messageId > 0) pos = writeString(out, pos, (4 << 3) | 2, m.messageId, s.messageId);
  if (s.deliverAt !== undefined) pos = writeBytes(out, pos, (5 << 3) | 2, s.deliverAt);
  if (s.delay !== undefined) pos = writeBytes(out, pos, (6 << 3) | 2, s.delay);
  if (m.priority !== 0) {
    out[pos++] = 7 << 3;
    if (m.priority < 0) {
      const b = int64Bytes(BigInt(m.priority));
      out.set(b, pos);
      pos += b.length;
    } else pos = writeVarint(out, pos, m.priority);
  }
  return pos;
}

/** The wire bytes of a SendPackRequest (topic = 1, messages = 2), as protobuf-es would read them back. */
export function encodeSendPackRequest(req: SendPackRequest): Buffer {
  return encodeTopicAndMessages(req.topic, req.messages);
}

/**
 * The wire bytes of a PublishRequest. A batch (messages = 2, as SendPackRequest's) is written
 * by hand; the stream's first request (`open`) by protobuf-es.
 */
export function encodePublishRequest(req: PublishRequest): Buffer {
  if (req.open !== undefined) {
    const bytes = toBinary(PublishRequestSchema, req);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  return encodeTopicAndMessages("", req.messages);
}

/** A string field 1 (left out when empty) and repeated Message field 2. */
function encodeTopicAndMessages(topic: string, messages: readonly Message[]): Buffer {
  const topicLength = Buffer.byteLength(topic);
  let size = topicLength > 0 ? 1 + varintSize(topicLength) + topicLength : 0;
  const sized = messages.map(measure);
  for (const s of sized) size += 1 + varintSize(s.size) + s.size;
  const out = Buffer.allocUnsafe(size);
  let pos = 0;
  if (topicLength > 0) pos = writeString(out, pos, (1 << 3) | 2, topic, topicLength);
  for (const s of sized) {
    out[pos++] = (2 << 3) | 2;
    pos = writeVarint(out, pos, s.size);
    pos = writeMessage(out, pos, s);
  }
  if (pos !== size) throw new Error(`request: wrote ${pos} bytes of ${size}`);
  return out;
}
