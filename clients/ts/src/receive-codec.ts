import { fromBinary } from "@bufbuild/protobuf";
import type * as grpc from "@grpc/grpc-js";
import type { Priority } from "./gen/nervebus/v1/message_pb.js";
import {
  type AckResults,
  type Heartbeat,
  type ReceiveRequest,
  ReceiveResponseSchema,
  type Subscribed,
  SubscriberService,
} from "./gen/nervebus/v1/subscriber_pb.js";
import { createClient, type ServiceClient } from "./grpc-adapter.js";

/*
 * The Receive stream's responses read by hand: a delivery becomes one plain object with
 * numbers where protobuf-es makes bigints and Timestamp messages. protobuf-es's reader, its
 * message objects and their garbage were a fifth of a subscriber's CPU (clients/ts/bench). The
 * rare parts of a response (subscribed, ack results, heartbeat) still go through protobuf-es.
 */

/** A delivered message as the receiver reads it (nervebus.v1.Delivery). */
export interface WireDelivery {
  readonly seq: number;
  /** A view of the response's bytes, as protobuf-es gives it. */
  readonly data: Uint8Array;
  readonly attributes: Record<string, string>;
  readonly orderingKey: string;
  readonly messageId: string;
  /** ms since the epoch (timestampMs of publish_time; 0 when absent). */
  readonly publishTimeMs: number;
  readonly attempt: number;
  readonly traceId: string;
  readonly priority: Priority;
}

/** A ReceiveResponse with its deliveries as WireDelivery. */
export interface ReceiveBatch {
  readonly subscribed?: Subscribed;
  readonly deliveries: WireDelivery[];
  readonly ackResults?: AckResults;
  readonly heartbeat?: Heartbeat;
}

/** The SubscriberService client whose Receive stream yields ReceiveBatch. */
export type SubscriberClient = Omit<ServiceClient<(typeof SubscriberService)["method"]>, "receive"> & {
  receive(
    metadata?: grpc.Metadata,
    options?: Partial<grpc.CallOptions>,
  ): grpc.ClientDuplexStream<ReceiveRequest, ReceiveBatch>;
};

/** A SubscriberService client that reads Receive responses with decodeReceiveResponse. */
export function createSubscriberClient(address: string, options: grpc.ClientOptions): SubscriberClient {
  return createClient(SubscriberService, address, undefined, options, {
    responseDecoders: { receive: decodeReceiveResponse },
  }) as unknown as SubscriberClient;
}

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LEN = 2;
const WIRE_START_GROUP = 3;
const WIRE_END_GROUP = 4;
const WIRE_FIXED32 = 5;

/** The low and high 32 bits of the varint readVarint read last (no object per varint). */
let lo = 0;
let hi = 0;

function truncated(): Error {
  return new Error("invalid ReceiveResponse: truncated");
}

/** Reads the varint at buf[pos] (before `end`) into lo/hi; returns the position after it. */
function readVarint(buf: Buffer, pos: number, end: number): number {
  lo = 0;
  hi = 0;
  let b = 0;
  for (let shift = 0; shift < 28; shift += 7) {
    if (pos >= end) throw truncated();
    b = buf[pos++]!;
    lo |= (b & 0x7f) << shift;
    if (b < 0x80) {
      lo >>>= 0;
      return pos;
    }
  }
  if (pos >= end) throw truncated();
  b = buf[pos++]!;
  lo = (lo | ((b & 0x0f) << 28)) >>> 0;
  hi = (b & 0x7f) >> 4;
  if (b < 0x80) return pos;
  for (let shift = 3; shift <= 31; shift += 7) {
    if (pos >= end) throw truncated();
    b = buf[pos++]!;
    hi |= (b & 0x7f) << shift;
    if (b < 0x80) {
      hi >>>= 0;
      return pos;
    }
  }
  throw new Error("invalid ReceiveResponse: varint longer than 10 bytes");
}

/** The last varint as a uint64 (exact up to 2^53). */
function uint64(): number {
  return hi * 0x1_0000_0000 + lo;
}

/** The last varint as an int64 (two's complement). */
function int64(): number {
  return (hi | 0) * 0x1_0000_0000 + lo;
}

/** Where the length-delimited field whose length starts at buf[pos] ends; its bytes start at `lenEnd`. */
let lenEnd = 0;
function readLength(buf: Buffer, pos: number, end: number): number {
  pos = readVarint(buf, pos, end);
  if (hi !== 0 || pos + lo > end) throw truncated();
  lenEnd = pos;
  return pos + lo;
}

/** The position after the field of wire type `wire` (and `field`, for groups) whose value starts at pos. */
function skipField(buf: Buffer, pos: number, end: number, wire: number, field: number): number {
  switch (wire) {
    case WIRE_VARINT:
      return readVarint(buf, pos, end);
    case WIRE_FIXED64:
      pos += 8;
      break;
    case WIRE_LEN:
      return readLength(buf, pos, end);
    case WIRE_FIXED32:
      pos += 4;
      break;
    case WIRE_START_GROUP:
      for (;;) {
        pos = readVarint(buf, pos, end);
        const tag = lo;
        if ((tag & 7) === WIRE_END_GROUP) {
          if (tag >>> 3 !== field) throw new Error("invalid ReceiveResponse: mismatched end group");
          return pos;
        }
        pos = skipField(buf, pos, end, tag & 7, tag >>> 3);
      }
    default:
      throw new Error(`invalid ReceiveResponse: wire type ${wire}`);
  }
  if (pos > end) throw truncated();
  return pos;
}

/** One Delivery message in buf[pos, end). */
function readDelivery(buf: Buffer, pos: number, end: number): WireDelivery {
  let seq = 0;
  let data: Uint8Array = EMPTY;
  const attributes: Record<string, string> = {};
  let orderingKey = "";
  let messageId = "";
  let seconds = 0;
  let nanos = 0;
  let timed = false;
  let attempt = 0;
  let traceId = "";
  let priority = 0;
  while (pos < end) {
    pos = readVarint(buf, pos, end);
    const tag = lo;
    const field = tag >>> 3;
    const wire = tag & 7;
    if (field === 1 && wire === WIRE_VARINT) {
      pos = readVarint(buf, pos, end);
      seq = uint64();
    } else if (field === 2 && wire === WIRE_LEN) {
      pos = readLength(buf, pos, end);
      data = new Uint8Array(buf.buffer, buf.byteOffset + lenEnd, pos - lenEnd);
    } else if (field === 3 && wire === WIRE_LEN) {
      const entryEnd = readLength(buf, pos, end);
      let p = lenEnd;
      let key = "";
      let value = "";
      while (p < entryEnd) {
        p = readVarint(buf, p, entryEnd);
        const t = lo;
        if (t === ((1 << 3) | WIRE_LEN)) {
          p = readLength(buf, p, entryEnd);
          key = buf.toString("utf8", lenEnd, p);
        } else if (t === ((2 << 3) | WIRE_LEN)) {
          p = readLength(buf, p, entryEnd);
          value = buf.toString("utf8", lenEnd, p);
        } else p = skipField(buf, p, entryEnd, t & 7, t >>> 3);
      }
      // "__proto__" as a plain assignment would set the object's prototype, not a key.
      if (key === "__proto__")
        Object.defineProperty(attributes, key, {
          value,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      else attributes[key] = value;
      pos = entryEnd;
    } else if (field === 4 && wire === WIRE_LEN) {
      pos = readLength(buf, pos, end);
      orderingKey = buf.toString("utf8", lenEnd, pos);
    } else if (field === 5 && wire === WIRE_LEN) {
      pos = readLength(buf, pos, end);
      messageId = buf.toString("utf8", lenEnd, pos);
    } else if (field === 6 && wire === WIRE_LEN) {
      const timeEnd = readLength(buf, pos, end);
      let p = lenEnd;
      timed = true;
      while (p < timeEnd) {
        p = readVarint(buf, p, timeEnd);
        const t = lo;
        if (t === ((1 << 3) | WIRE_VARINT)) {
          p = readVarint(buf, p, timeEnd);
          seconds = int64();
        } else if (t === ((2 << 3) | WIRE_VARINT)) {
          p = readVarint(buf, p, timeEnd);
          nanos = lo | 0;
        } else p = skipField(buf, p, timeEnd, t & 7, t >>> 3);
      }
      pos = timeEnd;
    } else if (field === 7 && wire === WIRE_VARINT) {
      pos = readVarint(buf, pos, end);
      attempt = lo;
    } else if (field === 8 && wire === WIRE_LEN) {
      pos = readLength(buf, pos, end);
      traceId = buf.toString("utf8", lenEnd, pos);
    } else if (field === 9 && wire === WIRE_VARINT) {
      pos = readVarint(buf, pos, end);
      priority = lo | 0;
    } else pos = skipField(buf, pos, end, wire, field);
  }
  return {
    seq,
    data,
    attributes,
    orderingKey,
    messageId,
    publishTimeMs: timed ? seconds * 1000 + Math.round(nanos / 1_000_000) : 0,
    attempt,
    traceId,
    priority: priority as Priority,
  };
}

const EMPTY = new Uint8Array(0);

/**
 * A ReceiveResponse from its bytes: deliveries (field 2) read by hand, every other field by
 * protobuf-es from those fields' bytes alone. Throws on bytes that are not a valid response.
 */
export function decodeReceiveResponse(buf: Buffer): ReceiveBatch {
  const deliveries: WireDelivery[] = [];
  const rest: Buffer[] = [];
  const end = buf.length;
  let pos = 0;
  while (pos < end) {
    const start = pos;
    pos = readVarint(buf, pos, end);
    const tag = lo;
    if (tag === ((2 << 3) | WIRE_LEN)) {
      pos = readLength(buf, pos, end);
      deliveries.push(readDelivery(buf, lenEnd, pos));
    } else {
      pos = skipField(buf, pos, end, tag & 7, tag >>> 3);
      rest.push(buf.subarray(start, pos));
    }
  }
  if (rest.length === 0) return { deliveries };
  const others = fromBinary(ReceiveResponseSchema, rest.length === 1 ? rest[0]! : Buffer.concat(rest));
  return {
    subscribed: others.subscribed,
    deliveries,
    ackResults: others.ackResults,
    heartbeat: others.heartbeat,
  };
}
