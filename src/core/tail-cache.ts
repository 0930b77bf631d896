import type { LogMessage } from "./model.js";
import type { TailCachePool } from "./tail-cache-pool.js";

/**
 * What a cached message costs beyond its payload and metadata bytes: the message object, the
 * Buffer views, the array slots (an estimate of V8's object sizes,
 * on the high side). Counting it makes the limit bound memory, not just payload bytes.
 */
const ENTRY_OVERHEAD_BYTES = 320;

/**
 * The most recent messages of a topic, in seq order, bounded in bytes. The write path appends
 * every message as it is assigned its seq, so subscribers that keep up are served from here and
 * never read the store. Oldest entries are evicted first.
 */
export class TailCache {
  readonly #limitBytes: number;
  #entries: LogMessage[] = [];
  #sizes: number[] = [];
  #head = 0;
  #firstSeq = 0;
  #bytes = 0;

  /** `pool`, when given, bounds the bytes of all topics' caches together. */
  constructor(
    limitBytes: number,
    private readonly pool?: TailCachePool,
  ) {
    this.#limitBytes = limitBytes;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** The lowest cached seq, or 0 when empty. */
  get firstSeq(): number {
    return this.#entries.length > this.#head ? this.#firstSeq : 0;
  }

  /** Appends the next message; a seq that does not follow the last one restarts the cache. */
  append(message: LogMessage): void {
    const size = message.data.byteLength + message.meta.byteLength + ENTRY_OVERHEAD_BYTES;
    if (
      this.#entries.length === this.#head ||
      message.seq !== this.#firstSeq + this.#entries.length - this.#head
    ) {
      this.clear();
      this.#firstSeq = message.seq;
    }
    this.#entries.push(message);
    this.#sizes.push(size);
    this.#bytes += size;
    this.pool?.resize(this, size);
    while (this.#bytes > this.#limitBytes && this.#entries.length - this.#head > 1) this.#evictOne();
    this.pool?.enforce(this);
  }

  /** Drops the oldest entries until at most `bytes` are held (the newest always stays). */
  shrinkTo(bytes: number): void {
    while (this.#bytes > bytes && this.#entries.length - this.#head > 1) this.#evictOne();
  }

  /** Drops every entry (the pool needs room, or the topic goes away). */
  clear(): void {
    this.pool?.resize(this, -this.#bytes);
    this.#entries = [];
    this.#sizes = [];
    this.#head = 0;
    this.#bytes = 0;
  }

  /** The cached message with this seq, if any. */
  get(seq: number): LogMessage | undefined {
    const i = seq - this.#firstSeq + this.#head;
    return i >= this.#head && i < this.#entries.length ? this.#entries[i] : undefined;
  }

  #evictOne(): void {
    const size = this.#sizes[this.#head]!;
    this.#bytes -= size;
    this.pool?.resize(this, -size);
    this.#head++;
    this.#firstSeq++;
    // Compact now and then so the arrays do not grow without bound.
    if (this.#head > 4096 && this.#head * 2 > this.#entries.length) {
      this.#entries = this.#entries.slice(this.#head);
      this.#sizes = this.#sizes.slice(this.#head);
      this.#head = 0;
    }
  }
}
