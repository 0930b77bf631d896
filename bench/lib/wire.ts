import { randomBytes } from "node:crypto";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { DeliverySchema, MessageSchema } from "../../clients/ts/src/gen/nervebus/v1/message_pb.js";
import { SendPackRequestSchema } from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import {
  HeartbeatSchema,
  ReceiveRequestSchema,
  ReceiveResponseSchema,
  StartPoint,
  SubscribedSchema,
  SubscribeSchema,
  WindowSchema,
} from "../../clients/ts/src/gen/nervebus/v1/subscriber_pb.js";
import { FLOW_CONTROL_OPTIONS } from "../../clients/ts/src/grpc-adapter.js";
import { varintSize, WireReader, writeVarint } from "../../src/wire/index.js";

/**
 * The load generators' side of the wire. Requests that repeat (a publish pack) are encoded once
 * and sent as bytes; responses are parsed only as far as the benchmark needs (seqs, a payload
 * timestamp, heartbeat figures), so the client spends as little of the shared 2 CPUs as
 * possible. `selfCheck` proves the hand-written parts agree with protobuf-es.
 */

export const SEND_PACK = "/nervebus.v1.PublisherService/SendPack";
export const RECEIVE = "/nervebus.v1.SubscriberService/Receive";

const identity = (b: Buffer): Buffer => b;

/** A gRPC client on its own HTTP/2 connection. */
export function rawClient(address: string): grpc.Client {
  return new grpc.Client(address, grpc.credentials.createInsecure(), {
    "grpc.max_receive_message_length": -1,
    "grpc.max_send_message_length": -1,
    "grpc.use_local_subchannel_pool": 1,
    // The TypeScript client's window (grpc-js's default of 64 KiB halves a drain).
    ...FLOW_CONTROL_OPTIONS,
  });
}

/** A random W3C traceparent, as a producer with tracing on would send. */
export function traceparent(): string {
  return `00-${randomBytes(16).toString("hex")}-${randomBytes(8).toString("hex")}-01`;
}

/** One SendPack request of `count` messages of `bytes` payload each, encoded once. */
export function encodePack(topic: string, count: number, bytes: number): Buffer {
  const payload = randomBytes(bytes);
  const messages = Array.from({ length: count }, () =>
    create(MessageSchema, { data: payload, attributes: { traceparent: traceparent() } }),
  );
  return Buffer.from(toBinary(SendPackRequestSchema, create(SendPackRequestSchema, { topic, messages })));
}

/** One encoded Message per payload size, and where its payload starts. */
const stampTemplates = new Map<number, { message: Buffer; dataOffset: number }>();

function stampTemplate(bytes: number): { message: Buffer; dataOffset: number } {
  let t = stampTemplates.get(bytes);
  if (t === undefined) {
    const size = Math.max(8, bytes);
    const message = Buffer.from(
      toBinary(
        MessageSchema,
        create(MessageSchema, { data: Buffer.alloc(size), attributes: { traceparent: traceparent() } }),
      ),
    );
    // Field 1 (data) comes first: tag 0x0a, its length as a varint, then the bytes.
    if (message[0] !== 0x0a) throw new Error("unexpected Message encoding");
    t = { message, dataOffset: 1 + varintSize(size) };
    stampTemplates.set(bytes, t);
  }
  return t;
}

/**
 * A SendPack request whose payloads start with a float64 send timestamp (ms, `now`): copies of
 * one encoded message with the stamp patched in, so a fixed-rate publisher costs little CPU.
 */
export function encodeStampedPack(topic: string, count: number, bytes: number, now: number): Buffer {
  const { message, dataOffset } = stampTemplate(bytes);
  const topicBytes = Buffer.from(topic);
  const each = 1 + varintSize(message.length) + message.length;
  const buf = Buffer.allocUnsafe(1 + varintSize(topicBytes.length) + topicBytes.length + count * each);
  buf[0] = 0x0a;
  let pos = writeVarint(buf, 1, topicBytes.length);
  pos += topicBytes.copy(buf, pos);
  for (let i = 0; i < count; i++) {
    buf[pos] = 0x12;
    pos = writeVarint(buf, pos + 1, message.length);
    message.copy(buf, pos);
    buf.writeDoubleLE(now, pos + dataOffset);
    pos += message.length;
  }
  return buf;
}

/** The part of a SendPackResponse the benchmarks use. */
export interface PackResult {
  firstSeq: number;
  lastSeq: number;
}

export function decodePackResult(buf: Buffer): PackResult {
  const r = new WireReader(buf);
  const out: PackResult = { firstSeq: 0, lastSeq: 0 };
  while (!r.done) {
    const tag = r.varint();
    const field = tag >>> 3;
    if (field === 1 && (tag & 7) === 0) out.firstSeq = r.varint();
    else if (field === 2 && (tag & 7) === 0) out.lastSeq = r.varint();
    else r.skip(tag & 7);
  }
  return out;
}

/** What the benchmarks read from one ReceiveResponse. */
export interface ReceiveBatch {
  /** Seqs of the deliveries, in order. */
  readonly seqs: number[];
  /** With `stamps`: the float64 at the start of each delivery's payload. */
  readonly stamps: number[];
  subscribed: { floor: number; lastSeq: number } | undefined;
  heartbeat: { lastSeq: number; floor: number; backlog: number; inFlight: number } | undefined;
  ackResults: boolean;
}

function decodeDelivery(r: WireReader, end: number, batch: ReceiveBatch, stamps: boolean): void {
  let seq = 0;
  let stamp = Number.NaN;
  while (r.pos < end) {
    const tag = r.varint();
    const field = tag >>> 3;
    if (field === 1 && (tag & 7) === 0) {
      seq = r.varint();
    } else if (field === 2 && (tag & 7) === 2 && stamps) {
      const len = r.varint();
      if (len >= 8) {
        const b = r.buf;
        stamp = Buffer.from(b.buffer, b.byteOffset + r.pos, 8).readDoubleLE(0);
      }
      r.pos += len;
    } else {
      r.skip(tag & 7);
    }
  }
  batch.seqs.push(seq);
  if (stamps) batch.stamps.push(stamp);
}

function decodeFields(buf: Buffer, start: number, end: number): Map<number, number> {
  const r = new WireReader(buf, start, end);
  const out = new Map<number, number>();
  while (!r.done) {
    const tag = r.varint();
    if ((tag & 7) === 0) out.set(tag >>> 3, r.varint());
    else r.skip(tag & 7);
  }
  return out;
}

/** Parses a ReceiveResponse; `stamps` also extracts each payload's leading timestamp. */
export function decodeReceive(buf: Buffer, stamps: boolean): ReceiveBatch {
  const batch: ReceiveBatch = {
    seqs: [],
    stamps: [],
    subscribed: undefined,
    heartbeat: undefined,
    ackResults: false,
  };
  const r = new WireReader(buf);
  while (!r.done) {
    const tag = r.varint();
    const field = tag >>> 3;
    if ((tag & 7) !== 2) {
      r.skip(tag & 7);
      continue;
    }
    const len = r.varint();
    const end = r.pos + len;
    if (field === 2) {
      decodeDelivery(r, end, batch, stamps);
    } else if (field === 1) {
      const f = decodeFields(buf, r.pos, end);
      batch.subscribed = { floor: f.get(2) ?? 0, lastSeq: f.get(3) ?? 0 };
    } else if (field === 4) {
      const f = decodeFields(buf, r.pos, end);
      batch.heartbeat = {
        lastSeq: f.get(1) ?? 0,
        floor: f.get(2) ?? 0,
        backlog: f.get(3) ?? 0,
        inFlight: f.get(4) ?? 0,
      };
    } else if (field === 3) {
      batch.ackResults = true;
    }
    r.pos = end;
  }
  return batch;
}

export function encodeAcks(seqs: readonly number[]): Buffer {
  let len = 0;
  for (const s of seqs) len += varintSize(s);
  const buf = Buffer.allocUnsafe(1 + varintSize(len) + len);
  buf[0] = 0x12;
  let pos = writeVarint(buf, 1, len);
  for (const s of seqs) pos = writeVarint(buf, pos, s);
  return buf;
}

/** The first request of a Receive stream. */
export function encodeSubscribe(
  topic: string,
  subscription: string,
  opts: { maxMessages: number; from: "earliest" | "latest"; ackDeadlineMs?: number },
): Buffer {
  const ms = opts.ackDeadlineMs ?? 600_000;
  return Buffer.from(
    toBinary(
      ReceiveRequestSchema,
      create(ReceiveRequestSchema, {
        subscribe: create(SubscribeSchema, {
          topic,
          subscription,
          window: create(WindowSchema, { maxMessages: opts.maxMessages, maxBytes: 0n }),
          ackDeadline: { seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 },
          start: {
            case: "startPoint",
            value: opts.from === "earliest" ? StartPoint.EARLIEST : StartPoint.LATEST,
          },
          consumerName: "bench",
        }),
      }),
    ),
  );
}

/** Sends one pre-encoded pack; resolves with its seqs once the broker confirms it durable. */
export function sendPack(client: grpc.Client, request: Buffer, deadlineMs: number): Promise<PackResult> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      SEND_PACK,
      identity,
      decodePackResult,
      request,
      new grpc.Metadata(),
      { deadline: Date.now() + deadlineMs },
      (err, res) => (err ? reject(err) : resolve(res!)),
    );
  });
}

/** Opens a raw Receive stream: requests are bytes, responses are `ReceiveBatch`es. */
export function openReceive(
  client: grpc.Client,
  stamps: boolean,
): grpc.ClientDuplexStream<Buffer, ReceiveBatch> {
  return client.makeBidiStreamRequest(RECEIVE, identity, (b: Buffer) => decodeReceive(b, stamps));
}

/** The gRPC status name of an error (RESOURCE_EXHAUSTED, …). */
export function statusName(err: unknown): string {
  const code = (err as { code?: number }).code;
  if (typeof code !== "number") return "CLIENT_ERROR";
  return grpc.status[code] ?? `CODE_${code}`;
}

/** Checks the hand-written encoders and decoders against protobuf-es; throws on a mismatch. */
export function selfCheck(): void {
  const stamp = 1.7e12 + 0.123;
  const data = Buffer.alloc(100);
  data.writeDoubleLE(stamp, 0);
  const wire = toBinary(
    ReceiveResponseSchema,
    create(ReceiveResponseSchema, {
      subscribed: create(SubscribedSchema, { created: true, floor: 7n, lastSeq: 300_000_000_000n }),
      deliveries: [1n, 200n, 2n ** 40n].map((seq) =>
        create(DeliverySchema, {
          seq,
          data,
          attributes: { traceparent: traceparent() },
          publishTime: { seconds: 1n, nanos: 2 },
          attempt: 1,
          traceId: "0af7651916cd43dd8448eb211c80319c",
        }),
      ),
      heartbeat: create(HeartbeatSchema, { lastSeq: 9n, floor: 8n, backlog: 1n, inFlight: 3 }),
    }),
  );
  const b = decodeReceive(Buffer.from(wire), true);
  const ok =
    b.seqs.join() === [1, 200, 2 ** 40].join() &&
    b.stamps.every((s) => s === stamp) &&
    b.subscribed?.floor === 7 &&
    b.subscribed.lastSeq === 300_000_000_000 &&
    b.heartbeat?.backlog === 1 &&
    b.heartbeat.inFlight === 3;
  if (!ok) throw new Error(`decodeReceive disagrees with protobuf-es: ${JSON.stringify(b)}`);
  const seqs = [1, 127, 128, 16_384, 2 ** 35 + 5];
  const acks = fromBinary(ReceiveRequestSchema, encodeAcks(seqs)).ackSeqs.map(Number);
  if (acks.join() !== seqs.join()) throw new Error(`encodeAcks disagrees with protobuf-es: ${acks}`);
  const pack = fromBinary(SendPackRequestSchema, encodeStampedPack("t", 2, 100, stamp));
  const m1 = pack.messages[1];
  if (
    pack.topic !== "t" ||
    pack.messages.length !== 2 ||
    m1 === undefined ||
    m1.data.length !== 100 ||
    Buffer.from(m1.data).readDoubleLE(0) !== stamp ||
    m1.attributes.traceparent === undefined
  )
    throw new Error("encodeStampedPack is wrong");
}
