import {
  type Duration,
  durationFromMs,
  durationMs,
  type Timestamp,
  timestampFromMs,
  timestampMs,
} from "@bufbuild/protobuf/wkt";
import { NerveBusError, StatusCode } from "./errors.js";
import { Priority as WirePriority } from "./gen/nervebus/v1/message_pb.js";
import { StartPoint } from "./gen/nervebus/v1/subscriber_pb.js";

/*
 * Conversions between the plain values of the public API (ms, Date, number) and the wire
 * types (Duration, Timestamp, uint64 as bigint).
 */

/**
 * Where a new subscription starts: the oldest retained message, only messages published from
 * now on, a given seq, or the first message published at or after a time. Ignored when the
 * subscription already exists.
 */
export type StartPosition =
  | "earliest"
  | "latest"
  | { readonly seq: number }
  | { readonly time: Date | number };

/** The `start` oneof of Subscribe and CreateSubscriptionRequest. */
export type WireStart =
  | { case: "startPoint"; value: StartPoint }
  | { case: "startSeq"; value: bigint }
  | { case: "startTime"; value: Timestamp }
  | { case: undefined; value?: undefined };

/** ms since the epoch of a Date or a number, refusing invalid dates. */
export function epochMs(field: string, t: Date | number): number {
  const ms = t instanceof Date ? t.getTime() : t;
  if (!Number.isFinite(ms)) throw invalidArgument(field, `is not a valid time: ${String(t)}`);
  return ms;
}

/** A wire Timestamp from a Date or ms since the epoch. */
export function toTimestamp(field: string, t: Date | number): Timestamp {
  return timestampFromMs(epochMs(field, t));
}

/** A wire Duration from ms (undefined stays undefined). */
export function toDuration(field: string, ms: number | undefined): Duration | undefined {
  if (ms === undefined) return undefined;
  if (!Number.isFinite(ms)) throw invalidArgument(field, `is not a finite number of ms: ${ms}`);
  return durationFromMs(Math.round(ms));
}

/** ms of a wire Duration; 0 when unset. */
export function fromDuration(d: Duration | undefined): number {
  return d === undefined ? 0 : durationMs(d);
}

/** A Date from a wire Timestamp; the epoch when unset. */
export function fromTimestamp(t: Timestamp | undefined): Date {
  return new Date(t === undefined ? 0 : timestampMs(t));
}

/** A JS number from a uint64 (the broker keeps seqs and counters as safe integers). */
export function fromUint64(v: bigint): number {
  return Number(v);
}

/** A uint64 from a non-negative integer. */
export function toUint64(field: string, v: number): bigint {
  if (!Number.isSafeInteger(v) || v < 0)
    throw invalidArgument(field, `must be a non-negative integer, got ${v}`);
  return BigInt(v);
}

/** The `start` oneof for a start position. */
export function toWireStart(field: string, start: StartPosition | undefined): WireStart {
  if (start === undefined) return { case: undefined };
  if (start === "earliest") return { case: "startPoint", value: StartPoint.EARLIEST };
  if (start === "latest") return { case: "startPoint", value: StartPoint.LATEST };
  if (typeof start === "object" && "seq" in start)
    return { case: "startSeq", value: toUint64(`${field}.seq`, start.seq) };
  if (typeof start === "object" && "time" in start)
    return { case: "startTime", value: toTimestamp(`${field}.time`, start.time) };
  throw invalidArgument(
    field,
    `expected "earliest", "latest", {seq} or {time}, got ${JSON.stringify(start)}`,
  );
}

/** A client-side INVALID_ARGUMENT naming the field, like the broker's own. */
export function invalidArgument(field: string, problem: string): NerveBusError {
  return new NerveBusError(StatusCode.INVALID_ARGUMENT, `${field}: ${problem}`);
}

/** A message's priority (see PublishMessage.priority). */
export type MessagePriority = "urgent" | "normal" | "bulk";

const PRIORITIES: Record<MessagePriority, WirePriority> = {
  urgent: WirePriority.URGENT,
  normal: WirePriority.UNSPECIFIED,
  bulk: WirePriority.BULK,
};

/** The priority of a delivery (unset and unknown values are normal). */
export function fromWirePriority(p: WirePriority): MessagePriority {
  return p === WirePriority.URGENT ? "urgent" : p === WirePriority.BULK ? "bulk" : "normal";
}

/** The wire priority of a message; throws INVALID_ARGUMENT for an unknown one. */
export function toWirePriority(p: MessagePriority | undefined): WirePriority {
  if (p === undefined) return WirePriority.UNSPECIFIED;
  const wire = PRIORITIES[p];
  if (wire === undefined)
    throw invalidArgument(
      "message.priority",
      `must be "urgent", "normal" or "bulk", got ${JSON.stringify(p)}`,
    );
  return wire;
}
