import { type Timestamp, timestampMs } from "@bufbuild/protobuf/wkt";
import { invalidArgument } from "../core/index.js";
import { timestampMsProblem, timestampProblem } from "../wire/index.js";

/**
 * ms since the epoch of a google.protobuf.Timestamp a client sent as `field`. One that is not
 * a Timestamp (nanos outside 0 to 999,999,999, seconds outside 0001-01-01 to 9999-12-31) is
 * INVALID_ARGUMENT naming `field.nanos` or `field.seconds`.
 */
export function timestampField(field: string, t: Pick<Timestamp, "seconds" | "nanos">): number {
  const bad = timestampProblem(t.seconds, t.nanos);
  if (bad !== undefined) throw invalidArgument(`${field}.${bad.part}`, bad.why);
  return timestampMs(t as Timestamp);
}

/**
 * `ms` since the epoch, a time the HTTP API was given as `field` (`text` as sent), when a
 * Timestamp holds it (the gRPC API takes no other); else INVALID_ARGUMENT naming `field`.
 */
export function timeField(field: string, ms: number, text: string): number {
  const bad = timestampMsProblem(ms);
  if (bad !== undefined) throw invalidArgument(field, `${bad}, got ${JSON.stringify(text.slice(0, 40))}`);
  return ms;
}
