import type { LogMessage } from "./model.js";

/** Bytes one subscription's read-ahead aims for when few subscriptions lag. */
const MAX_READ_BYTES = 4 << 20;
/** …and when many do: small enough to read efficiently still. */
const MIN_READ_BYTES = 64 << 10;

/**
 * The read-ahead rows of all lagging subscriptions together are bounded: 100 subscriptions
 * reading 4 MiB each held 400 MB. Each read aims for an equal share of `totalBytes` among the
 * subscriptions holding rows, between 64 KiB and 4 MiB.
 */
export class ReadAheadShare {
  readonly #holders = new Set<ReadAhead>();

  constructor(readonly totalBytes: number) {}

  /** Bytes the next read of `reader` should aim for. */
  target(reader: ReadAhead): number {
    const n = this.#holders.size + (this.#holders.has(reader) ? 0 : 1);
    return Math.max(MIN_READ_BYTES, Math.min(MAX_READ_BYTES, Math.floor(this.totalBytes / n)));
  }

  hold(reader: ReadAhead, holding: boolean): void {
    if (holding) this.#holders.add(reader);
    else this.#holders.delete(reader);
  }
}

/**
 * The read-ahead window of a lagging subscription: which range to read from the store next
 * (one read at a time, sized by its ReadAheadShare), and the rows of the last range read, by
 * seq (holes where the store had none), each handed out once.
 */
export class ReadAhead {
  #from = 0;
  #rows: (LogMessage | undefined)[] = [];
  #reading = false;
  /** Rows per read; adapts to the message size seen. */
  #readRows = 64;
  /** Rows not taken yet. */
  #left = 0;

  constructor(private readonly share: ReadAheadShare) {}

  /**
   * Starts a read from `from`: returns the last seq to read (at most `watermark`), or undefined
   * when a read is in flight already. Call `end` once it is over.
   */
  begin(from: number, watermark: number): number | undefined {
    if (this.#reading) return undefined;
    this.#reading = true;
    return Math.min(watermark, from + this.#readRows - 1);
  }

  /** The read begun last is over (done or failed). */
  end(): void {
    this.#reading = false;
  }

  /** Replaces the contents with the rows (in seq order) of a range starting at `from`. */
  fill(from: number, rows: readonly LogMessage[]): void {
    this.#from = from;
    const last = rows.length > 0 ? rows[rows.length - 1]!.seq : from - 1;
    const slots = new Array<LogMessage | undefined>(last - from + 1);
    let bytes = 0;
    for (const row of rows) {
      slots[row.seq - from] = row;
      bytes += row.bytes;
    }
    this.#rows = slots;
    this.#left = rows.length;
    this.share.hold(this, rows.length > 0);
    // Aim for this reader's share of bytes per read: small messages come in large ranges,
    // large ones in few.
    const avg = rows.length > 0 ? bytes / rows.length : 1024;
    this.#readRows = Math.max(1, Math.min(5000, Math.floor(this.share.target(this) / Math.max(avg, 1))));
  }

  has(seq: number): boolean {
    return this.#rows[seq - this.#from] !== undefined;
  }

  /** The message with this seq, if read and not taken yet; it is taken. */
  take(seq: number): LogMessage | undefined {
    const i = seq - this.#from;
    if (i < 0 || i >= this.#rows.length) return undefined;
    const row = this.#rows[i];
    if (row === undefined) return undefined;
    this.#rows[i] = undefined;
    if (--this.#left === 0) {
      this.#rows = [];
      this.share.hold(this, false);
    }
    return row;
  }

  clear(): void {
    this.#rows = [];
    this.#left = 0;
    this.share.hold(this, false);
  }
}
