import type { LogMessage } from "./model.js";

/**
 * The read-ahead window of a lagging subscription: which range to read from the store next
 * (one read at a time, sized for ~4 MiB), and the rows of the last range read, by seq (holes
 * where the store had none), each handed out once.
 */
export class ReadAhead {
  #from = 0;
  #rows: (LogMessage | undefined)[] = [];
  #reading = false;
  /** Rows per read; adapts to the message size seen. */
  #readRows = 64;

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
    // Aim for ~4 MiB per read: small messages come in large ranges, large ones in few.
    const avg = rows.length > 0 ? bytes / rows.length : 1024;
    this.#readRows = Math.max(1, Math.min(5000, Math.floor((4 << 20) / Math.max(avg, 1))));
  }

  has(seq: number): boolean {
    return this.#rows[seq - this.#from] !== undefined;
  }

  /** The message with this seq, if read and not taken yet; it is taken. */
  take(seq: number): LogMessage | undefined {
    const i = seq - this.#from;
    if (i < 0 || i >= this.#rows.length) return undefined;
    const row = this.#rows[i];
    this.#rows[i] = undefined;
    return row;
  }

  clear(): void {
    this.#rows = [];
  }
}
