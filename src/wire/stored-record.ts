/**
 * The check every record read back from a store passes before anything else parses it: a row
 * that is not what the broker wrote (a bad disk, a hand-edited body) must become an error
 * naming it, not an exception deep in a delivery that ends the process
 * (test/integration/corrupt-run-sqlite.test.ts). It walks the record's fields without
 * allocating (stored bytes of a drain pass through it), checking what the readers after it rely
 * on: every field's wire type and length within the record, the seq first and the one expected,
 * attribute entries and the publish time well formed, strings UTF-8 (clients refuse a Delivery
 * whose strings are not). Payload bytes are not checked: there is no checksum to check them
 * against (the database's own page checksums cover them).
 */

import { isUtf8 } from "node:buffer";

const TAG_SEQ = 1 << 3;
const F_DATA = 2;
const F_ATTRIBUTES = 3;
const F_PUBLISH_TIME = 6;

/** Where the last varint read ended, −1 when it was malformed (module state: no object per read). */
let at = 0;

function varint(buf: Buffer, pos: number, end: number): number {
  let result = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= end) break;
    const b = buf[pos++]!;
    result += (b & 127) * scale;
    if (b < 128) {
      at = pos;
      return result;
    }
    scale *= 128;
  }
  at = -1;
  return 0;
}

/** Where a field of wire type `type` whose value starts at `pos` ends, or −1 when it is not one within `end`. */
function fieldEnd(buf: Buffer, pos: number, end: number, type: number): number {
  switch (type) {
    case 0:
      varint(buf, pos, end);
      return at;
    case 1:
      return pos + 8 <= end ? pos + 8 : -1;
    case 2: {
      const len = varint(buf, pos, end);
      if (at < 0) return -1;
      return len <= end - at ? at + len : -1;
    }
    case 5:
      return pos + 4 <= end ? pos + 4 : -1;
    default:
      return -1;
  }
}

/** Whether buf[s, e) is UTF-8, as protobuf strings must be (ASCII, the usual case, without a native call). */
function utf8(buf: Buffer, s: number, e: number): boolean {
  for (let i = s; i < e; i++) if (buf[i]! > 127) return isUtf8(buf.subarray(s, e));
  return true;
}

/**
 * Whether buf[pos, end) is a run of well-formed fields (a nested message); with `strings`,
 * each length-delimited one must be UTF-8 (an attribute entry's key and value).
 */
function wellFormed(buf: Buffer, pos: number, end: number, strings: boolean): boolean {
  while (pos < end) {
    const tag = varint(buf, pos, end);
    if (at < 0) return false;
    const valueStart = at;
    pos = fieldEnd(buf, valueStart, end, tag & 7);
    if (pos < 0) return false;
    if (strings && (tag & 7) === 2) {
      varint(buf, valueStart, end);
      if (!utf8(buf, at, pos)) return false;
    }
  }
  return true;
}

/**
 * Why body[start, end) is not the stored record of `seq` (the record without its length
 * prefix), or undefined when it is one.
 */
export function storedRecordProblem(
  body: Buffer,
  start: number,
  end: number,
  seq: number,
): string | undefined {
  if (start >= end || body[start] !== TAG_SEQ) return "it does not start with its seq";
  const stored = varint(body, start + 1, end);
  if (at < 0) return "its seq is malformed";
  if (stored !== seq) return `it holds seq ${stored}`;
  let pos = at;
  while (pos < end) {
    const tag = varint(body, pos, end);
    if (at < 0) return "a field's tag is malformed";
    const field = tag >>> 3;
    const type = tag & 7;
    const valueStart = at;
    const next = fieldEnd(body, valueStart, end, type);
    if (next < 0) return `field ${field} (wire type ${type}) does not fit the record`;
    if (type === 2 && field !== F_DATA) {
      varint(body, valueStart, end);
      const ok =
        field === F_ATTRIBUTES || field === F_PUBLISH_TIME
          ? wellFormed(body, at, next, field === F_ATTRIBUTES)
          : utf8(body, at, next);
      if (!ok) return `field ${field} is malformed`;
    }
    pos = next;
  }
  return undefined;
}
