import { type Duration, durationMs } from "@bufbuild/protobuf/wkt";
import { invalidArgument } from "../core/index.js";

/** The most a google.protobuf.Duration's nanos may be, either way (duration.proto). */
const MAX_NANOS = 999_999_999;

/**
 * ms of a google.protobuf.Duration a client sent as `field`. Nanos outside ±999,999,999 is
 * not a Duration: INVALID_ARGUMENT naming `field.nanos` (it was read as that many more ms).
 */
export function durationField(field: string, d: Pick<Duration, "seconds" | "nanos">): number {
  if (!Number.isInteger(d.nanos) || Math.abs(d.nanos) > MAX_NANOS)
    throw invalidArgument(`${field}.nanos`, `must be -999999999 to 999999999, got ${d.nanos}`);
  return durationMs(d as Duration);
}
