/** What the pool needs of a cache (TailCache is one). */
export interface PooledCache {
  readonly bytes: number;
  /** Drops every entry. */
  clear(): void;
  /** Drops the oldest entries until at most `bytes` are held (the newest stays). */
  shrinkTo(bytes: number): void;
}

/**
 * One bound on the tail caches of all topics together (each also has its own): without it,
 * every topic's cache may fill to its limit, and 119 topics of 16 MiB held 2 GiB. When the
 * total is over, the caches of the topics appended to least recently are emptied first (their
 * subscribers read from the store instead); the topic being appended to is trimmed last.
 */
export class TailCachePool {
  #used = 0;
  /** Caches in order of their last append, least recent first. */
  readonly #recent = new Set<PooledCache>();
  #newest: PooledCache | undefined;

  constructor(readonly limitBytes: number) {}

  /** Bytes held by all caches. */
  get usedBytes(): number {
    return this.#used;
  }

  /** A cache grew (or shrank) by `delta` bytes. */
  resize(_cache: PooledCache, delta: number): void {
    this.#used += delta;
  }

  /** After `cache` was appended to: makes it the most recent and brings the total under the limit. */
  enforce(cache: PooledCache): void {
    if (this.#newest !== cache) {
      this.#recent.delete(cache);
      this.#recent.add(cache);
      this.#newest = cache;
    }
    if (this.#used <= this.limitBytes) return;
    for (const older of this.#recent) {
      if (older === cache) break;
      older.clear();
      this.#recent.delete(older);
      if (this.#used <= this.limitBytes) return;
    }
    cache.shrinkTo(cache.bytes - (this.#used - this.limitBytes));
  }

  /** The cache's topic is gone. */
  remove(cache: PooledCache): void {
    cache.clear();
    this.#recent.delete(cache);
    if (this.#newest === cache) this.#newest = undefined;
  }
}
