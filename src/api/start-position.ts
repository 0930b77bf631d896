import { type Timestamp, timestampMs } from "@bufbuild/protobuf/wkt";
import { StartPoint } from "../../clients/ts/src/gen/nervebus/v1/subscriber_pb.js";
import { invalidArgument, type StartPosition } from "../core/index.js";

/** The `start` oneof of Subscribe and CreateSubscriptionRequest. */
export type WireStart =
  | { case: "startPoint"; value: StartPoint }
  | { case: "startSeq"; value: bigint }
  | { case: "startTime"; value: Timestamp }
  | { case: undefined; value?: undefined };

/**
 * Where a new subscription starts, from the wire: unset means latest, as the proto says.
 * `seqField` names start_seq in the error for a seq below 1.
 */
export function toStartPosition(start: WireStart, seqField: string): StartPosition {
  switch (start.case) {
    case "startSeq":
      if (start.value < 1n) throw invalidArgument(seqField, "must be ≥ 1");
      return { kind: "seq", seq: Number(start.value) };
    case "startTime":
      return { kind: "time", time: timestampMs(start.value) };
    case "startPoint":
      return start.value === StartPoint.EARLIEST ? { kind: "earliest" } : { kind: "latest" };
    default:
      return { kind: "latest" };
  }
}
