import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { StartPoint } from "../../clients/ts/src/gen/nervebus/v1/subscriber_pb.js";
import { invalidArgument, type StartPosition } from "../core/index.js";
import { timestampField } from "./timestamp-field.js";

/** The `start` oneof of Subscribe and CreateSubscriptionRequest. */
export type WireStart =
  | { case: "startPoint"; value: StartPoint }
  | { case: "startSeq"; value: bigint }
  | { case: "startTime"; value: Timestamp }
  | { case: undefined; value?: undefined };

/**
 * Where a new subscription starts, from the wire: unset means latest, as the proto says.
 * `prefix` goes before start_seq and start_time in errors (a seq below 1, a time that is no
 * Timestamp): "subscribe." in a Receive stream's, "" in CreateSubscription's.
 */
export function toStartPosition(start: WireStart, prefix: string): StartPosition {
  switch (start.case) {
    case "startSeq":
      if (start.value < 1n) throw invalidArgument(`${prefix}start_seq`, "must be ≥ 1");
      return { kind: "seq", seq: Number(start.value) };
    case "startTime":
      return { kind: "time", time: timestampField(`${prefix}start_time`, start.value) };
    case "startPoint":
      return start.value === StartPoint.EARLIEST ? { kind: "earliest" } : { kind: "latest" };
    default:
      return { kind: "latest" };
  }
}
