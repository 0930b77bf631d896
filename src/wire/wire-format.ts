import { isUtf8 } from "node:buffer";
/**
 * The few pieces of the protobuf wire format the hot paths write and read by hand: varints
 * (numbers up to 2^53, which covers seqs and times) and length-delimited fields. Everything
 * else goes through protobuf-es; test/unit/fast-codec.test.ts checks both agree.
 */

export const WIRE_VARINT = 0;
export const WIRE_I64 = 1;
export const WIRE_LEN = 2;
export const WIRE_I32 = 5;

/** Bytes a varint of `v` (0 ≤ v < 2^53) takes. */
export function varintSize(v: number): number {
  let n = 1;
  while (v >= 128) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

/** Writes `v` (0 ≤ v < 2^53) at `pos`; returns the position after it. */
export function writeVarint(buf: Uint8Array, pos: number, v: number): number {
  while (v >= 128) {
    // `& 127` looks at the low 32 bits only, which hold the low 7 bits of v.
    buf[pos++] = (v & 127) | 128;
    v = Math.floor(v / 128);
  }
  buf[pos++] = v;
  return pos;
}

/** Writes a varint field (field number < 16): tag, then `v`. Returns the position after it. */
export function writeVarintField(buf: Uint8Array, pos: number, field: number, v: number): number {
  buf[pos++] = (field << 3) | WIRE_VARINT;
  return writeVarint(buf, pos, v);
}

/** Writes a string field whose UTF-8 length is `len`. Returns the position after it. */
export function writeStringField(buf: Buffer, pos: number, field: number, s: string, len: number): number {
  buf[pos++] = (field << 3) | WIRE_LEN;
  pos = writeVarint(buf, pos, len);
  return pos + buf.write(s, pos, len, "utf8");
}

/** Size of a length-delimited field (field number < 16) holding `len` bytes. */
export function lenFieldSize(len: number): number {
  return 1 + varintSize(len) + len;
}

/**
 * Copies src[start, end) to dst at `pos`; returns the position after it. Short copies (most
 * fields of a message) in a loop: Buffer#copy costs more in argument checks than it copies.
 */
export function copyBytes(src: Uint8Array, start: number, end: number, dst: Uint8Array, pos: number): number {
  const len = end - start;
  if (len < 64) {
    for (let i = 0; i < len; i++) dst[pos + i] = src[start + i]!;
  } else {
    dst.set(src.subarray(start, end), pos);
  }
  return pos + len;
}

/** Thrown for bytes that are not valid protobuf; the API layer turns it into INVALID_ARGUMENT. */
export class WireError extends Error {}

/** A cursor over protobuf wire bytes. */
export class WireReader {
  pos: number;

  constructor(
    readonly buf: Buffer,
    pos = 0,
    readonly end = buf.length,
  ) {
    this.pos = pos;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  /** A varint as a number; values past 2^53 lose precision (no seq or time gets there). */
  varint(): number {
    const buf = this.buf;
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new WireError("truncated varint");
      const b = buf[this.pos++]!;
      result += (b & 127) * scale;
      if (b < 128) return result;
      scale *= 128;
    }
    throw new WireError("varint longer than 10 bytes");
  }

  /** The next tag as [field number, wire type]. */
  tag(): number {
    return this.varint();
  }

  /** The bounds of a length-delimited value; moves past it. */
  lenRange(): [number, number] {
    const len = this.varint();
    const start = this.pos;
    if (len > this.end - start) throw new WireError("length-delimited field runs past its message");
    this.pos = start + len;
    return [start, start + len];
  }

  bytes(): Buffer {
    const [s, e] = this.lenRange();
    return this.buf.subarray(s, e);
  }

  /**
   * A string field; `field` names it in the error. Protobuf strings are UTF-8: invalid bytes
   * are refused rather than silently turned into U+FFFD.
   */
  string(field = "a string field"): string {
    const [s, e] = this.lenRange();
    if (e - s > 0 && !isUtf8(this.buf.subarray(s, e))) throw new WireError(`${field} is not valid UTF-8`);
    return this.buf.toString("utf8", s, e);
  }

  /** Skips a field of this wire type. */
  skip(wireType: number): void {
    switch (wireType) {
      case WIRE_VARINT:
        this.varint();
        return;
      case WIRE_I64:
        this.pos += 8;
        break;
      case WIRE_LEN:
        this.lenRange();
        return;
      case WIRE_I32:
        this.pos += 4;
        break;
      default:
        throw new WireError(`unsupported wire type ${wireType}`);
    }
    if (this.pos > this.end) throw new WireError("truncated fixed-width field");
  }
}
