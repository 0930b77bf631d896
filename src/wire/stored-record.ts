/**
 * The check every record read back from a store passes before anything else parses it: a row
 * that is not what the broker wrote (a bad disk, a hand-edited body) must become an error
 * naming it, not an exception deep in a delivery that ends the process
 * (test/integration/corrupt-run-sqlite.test.ts). It walks the record's fields once, without
 * allocating, checking what the readers after it rely on (every field's wire type and length
 * within the record, the seq first and the one expected, attribute entries and the publish time
 * well formed), and returns what a first delivery needs to know of the record (recordInfo's
 * number), so a drain walks each record once, as it did before the check. Strings are checked
 * for UTF-8 where they are decoded (message-meta.ts), not here: a byte loop over every
 * attribute would cost a drain more than the walk. Payload bytes carry no checksum to check.
 */

const TAG_SEQ = 1 << 3;
const F_DATA = 2;
const F_ATTRIBUTES = 3;
const F_ORDERING_KEY = 4;
const F_MESSAGE_ID = 5;
const F_PUBLISH_TIME = 6;

/** Why the last storedRecordInfo answered −1. */
export let storedRecordProblem = "";

/** Where the last varint read ended, −1 when it was malformed (module state: no object per read). */
let at = 0;

function varint(buf: Buffer, pos: number, end: number): number {
  if (pos < end) {
    const b = buf[pos]!;
    if (b < 128) {
      at = pos + 1;
      return b;
    }
  }
  let result = 0;
  let scale = 1;
  for (let i = 0; i < 10 && pos < end; i++) {
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

/**
 * Walks the fields of buf[pos, end) (a nested message: an attribute entry, a timestamp).
 * Returns the bytes of its length-delimited values, or −1 when a field is malformed.
 */
function nested(buf: Buffer, pos: number, end: number): number {
  let bytes = 0;
  while (pos < end) {
    const tag = varint(buf, pos, end);
    if (at < 0) return -1;
    const type = tag & 7;
    if (type === 0) {
      varint(buf, at, end);
      if (at < 0) return -1;
      pos = at;
    } else if (type === 2) {
      const len = varint(buf, at, end);
      if (at < 0 || len > end - at) return -1;
      bytes += len;
      pos = at + len;
    } else if (type === 1 || type === 5) {
      pos = at + (type === 1 ? 8 : 4);
      if (pos > end) return -1;
    } else return -1;
  }
  return bytes;
}

/**
 * Checks body[start, end) (a record without its length prefix) as the stored record of `seq`.
 * Returns its size as windows count it (payload, attribute keys and values, ordering key,
 * message id) times 2, plus 1 when it has an ordering key; −1 when it is not such a record
 * (storedRecordProblem says why).
 */
export function storedRecordInfo(body: Buffer, start: number, end: number, seq: number): number {
  if (start >= end || body[start] !== TAG_SEQ) return fail("it does not start with its seq");
  const stored = varint(body, start + 1, end);
  if (at < 0) return fail("its seq is malformed");
  if (stored !== seq) return fail(`it holds seq ${stored}`);
  let pos = at;
  let bytes = 0;
  let key = 0;
  while (pos < end) {
    const tag = varint(body, pos, end);
    if (at < 0) return fail("a field's tag is malformed");
    const field = tag >>> 3;
    const type = tag & 7;
    if (type === 2) {
      const len = varint(body, at, end);
      if (at < 0 || len > end - at) return fail(`field ${field} does not fit the record`);
      const value = at;
      pos = value + len;
      if (field === F_DATA || field === F_MESSAGE_ID) bytes += len;
      else if (field === F_ORDERING_KEY) {
        bytes += len;
        if (len > 0) key = 1;
      } else if (field === F_ATTRIBUTES || field === F_PUBLISH_TIME) {
        const inner = nested(body, value, pos);
        if (inner < 0) return fail(`field ${field} is malformed`);
        if (field === F_ATTRIBUTES) bytes += inner;
      }
    } else if (type === 0) {
      varint(body, at, end);
      if (at < 0) return fail(`field ${field} is malformed`);
      pos = at;
    } else if (type === 1 || type === 5) {
      pos = at + (type === 1 ? 8 : 4);
      if (pos > end) return fail(`field ${field} does not fit the record`);
    } else return fail(`field ${field} has wire type ${type}`);
  }
  return bytes * 2 + key;
}

function fail(problem: string): number {
  storedRecordProblem = problem;
  return -1;
}
