import { randomFillSync } from "node:crypto";

/** W3C traceparent: version-traceid-parentid-flags, lowercase hex. */
const TRACEPARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/;

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

/** The trace id of a valid traceparent, or undefined. */
export function traceIdOf(traceparent: string | undefined): string | undefined {
  if (traceparent === undefined) return undefined;
  const m = TRACEPARENT.exec(traceparent);
  return m && m[1] !== "00000000000000000000000000000000" ? m[1] : undefined;
}

/** A new sampled root traceparent, for messages published without trace context. */
export function newTraceparent(): string {
  return `00-${randomHex(16)}-${randomHex(8)}-01`;
}
