import { randomFillSync } from "node:crypto";

// Random ids come from a pool refilled in bulk: one randomFillSync per 256 messages instead of
// one call per message on the publish path.
const pool = Buffer.alloc(24 * 256);
let poolOffset = pool.length;

function randomHex(bytes: number): string {
  if (poolOffset + bytes > pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const hex = pool.toString("hex", poolOffset, poolOffset + bytes);
  poolOffset += bytes;
  return hex;
}

const ZERO_TRACE = "00000000000000000000000000000000";

function isLowerHex(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

/**
 * The trace id of a valid traceparent (version-traceid-parentid-flags, 55 characters), or
 * undefined. Character checks rather than a regex: it runs for every message published and
 * delivered.
 */
export function traceIdOf(traceparent: string | undefined): string | undefined {
  if (traceparent === undefined || traceparent.length !== 55) return undefined;
  if (
    traceparent.charCodeAt(2) !== 45 ||
    traceparent.charCodeAt(35) !== 45 ||
    traceparent.charCodeAt(52) !== 45
  )
    return undefined;
  if (
    !isLowerHex(traceparent, 0, 2) ||
    !isLowerHex(traceparent, 3, 35) ||
    !isLowerHex(traceparent, 36, 52) ||
    !isLowerHex(traceparent, 53, 55)
  ) {
    return undefined;
  }
  const id = traceparent.slice(3, 35);
  return id === ZERO_TRACE ? undefined : id;
}

/** A new sampled root traceparent, for messages published without trace context. */
export function newTraceparent(): string {
  return `00-${randomHex(16)}-${randomHex(8)}-01`;
}
