/**
 * The range of a google.protobuf.Timestamp (timestamp.proto), so that every one converts to and
 * from an RFC 3339 date: seconds from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z, nanos 0 to
 * 999,999,999 (negative times count seconds down and nanos up).
 */
const MIN_SECONDS = -62_135_596_800;
const MAX_SECONDS = 253_402_300_799;
const MAX_NANOS = 999_999_999;

/** The earliest and latest ms since the epoch a Timestamp holds. */
const MIN_MS = MIN_SECONDS * 1000;
const MAX_MS = MAX_SECONDS * 1000 + 999;

/** Which part of a Timestamp is out of range, and why, for an error naming `field.part`. */
export interface TimestampProblem {
  readonly part: "seconds" | "nanos";
  readonly why: string;
}

/**
 * What makes `seconds` and `nanos`, as a client sent them, no Timestamp; undefined when they
 * are one. Read as they came, nanos of -1 was a ms early and 1e9 a second late, and seconds
 * outside the range went on as times no Timestamp holds.
 */
export function timestampProblem(seconds: bigint | number, nanos: number): TimestampProblem | undefined {
  if (!Number.isInteger(nanos) || nanos < 0 || nanos > MAX_NANOS)
    return { part: "nanos", why: `must be 0 to ${MAX_NANOS}, got ${nanos}` };
  if (seconds < MIN_SECONDS || seconds > MAX_SECONDS)
    return {
      part: "seconds",
      why: `must be ${MIN_SECONDS} to ${MAX_SECONDS} (0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z), got ${exact(seconds)}`,
    };
  return undefined;
}

/** Whether `ms` since the epoch is a time a Timestamp holds; else why not. */
export function timestampMsProblem(ms: number): string | undefined {
  if (ms >= MIN_MS && ms <= MAX_MS) return undefined;
  return `must be between ${new Date(MIN_MS).toISOString()} and ${new Date(MAX_MS).toISOString()}`;
}

/** A number as sent, or where it lies when it was read past 2^53 and rounded. */
function exact(n: bigint | number): string {
  if (typeof n === "bigint" || Number.isSafeInteger(n)) return String(n);
  return n < 0 ? "below -2^53" : "past 2^53";
}
