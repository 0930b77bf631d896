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
  // Comparisons for what seqs, lengths and times usually are; a division per 7 bits beyond.
  if (v < 0x80) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x200000) return 3;
  if (v < 0x10000000) return 4;
  let n = 5;
  for (v = Math.floor(v / 0x800000000); v >= 1; v = Math.floor(v / 128)) n++;
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

/** A buffer with a DataView over all of it, made once per buffer for copyViews. */
export class ByteView {
  readonly view: DataView;

  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
}

/**
 * 256 B: below it four bytes a step through DataViews beat `set` (which needs a view object of
 * the source range: the garbage of three of them per published message kept the young
 * generation, and through it the old one, collecting); above it `set`'s memcpy wins.
 */
const VIEW_COPY_MAX = 256;

/**
 * copyBytes for the per-message loops: src[start, end) to dst at `pos` through the buffers'
 * DataViews, allocating nothing for copies under 256 B. Returns the position after it.
 */
export function copyViews(src: ByteView, start: number, end: number, dst: ByteView, pos: number): number {
  if (end - start >= VIEW_COPY_MAX) {
    dst.bytes.set(src.bytes.subarray(start, end), pos);
    return pos + end - start;
  }
  const s = src.view;
  const d = dst.view;
  let i = start;
  for (const last = end - 4; i <= last; i += 4, pos += 4) d.setUint32(pos, s.getUint32(i));
  for (; i < end; i++) d.setUint8(pos++, s.getUint8(i));
  return pos;
}

/** Thrown for bytes that are not valid protobuf; the API layer turns it into INVALID_ARGUMENT. */
export class WireError extends Error {}

/** A cursor over protobuf wire bytes. */
export class WireReader {
  pos: number;

  /** Where its bytes end; a reader may be moved to another range of `buf` (pos, end). */
  end: number;

  constructor(
    readonly buf: Buffer,
    pos = 0,
    end = buf.length,
  ) {
    this.pos = pos;
    this.end = end;
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
    const start = this.lenStart();
    return [start, this.pos];
  }

  /**
   * Moves past a length-delimited value and returns where it starts; it ends at `pos`. The
   * hot readers use it instead of lenRange: no array per field.
   */
  lenStart(): number {
    const len = this.varint();
    const start = this.pos;
    if (len > this.end - start) throw new WireError("length-delimited field runs past its message");
    this.pos = start + len;
    return start;
  }

  bytes(): Buffer {
    const s = this.lenStart();
    return this.buf.subarray(s, this.pos);
  }

  /**
   * A string field; `field` names it in the error. Protobuf strings are UTF-8: invalid bytes
   * are refused rather than silently turned into U+FFFD.
   */
  string(field = "a string field"): string {
    const s = this.lenStart();
    const e = this.pos;
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
        this.lenStart();
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
