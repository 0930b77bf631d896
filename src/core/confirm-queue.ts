import { NerveBusError, storeOutOfSpace } from "./errors.js";

interface PendingConfirm {
  readonly lastSeq: number;
  readonly deadline: number;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

/** What a resolved slot holds until the queue is compacted. */
const SETTLED: PendingConfirm = { lastSeq: 0, deadline: 0, resolve() {}, reject() {} };

/** How often packs past their deadline are looked for while any wait. */
const SWEEP_MS = 250;

/**
 * The packs of one topic waiting for their confirm, in arrival order: each resolves once the
 * writer watermark covers its last seq, or fails with UNAVAILABLE (outcome unknown: it may still
 * become durable) once its deadline passes first. One array with a moving head, so confirming
 * costs no allocation per pack.
 */
export class ConfirmQueue {
  readonly #items: PendingConfirm[] = [];
  #head = 0;
  #sweepTimer: NodeJS.Timeout | undefined;

  constructor(
    /** The store's last error while writes are failing, named in a deadline failure. */
    private readonly lastStoreError: () => unknown,
  ) {}

  /** Resolves with `value` once `settle` reaches `lastSeq`; rejects at `deadline`. */
  wait<T>(lastSeq: number, deadline: number, value: T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#items.push({ lastSeq, deadline, resolve: () => resolve(value), reject });
      this.#armSweep();
    });
  }

  /** Resolves the packs, from the head, whose last seq is ≤ `watermark`. */
  settle(watermark: number): void {
    while (this.#head < this.#items.length && this.#items[this.#head]!.lastSeq <= watermark) {
      const c = this.#items[this.#head]!;
      // The slot is compacted away later; it must not keep the pack's results alive till then.
      this.#items[this.#head++] = SETTLED;
      c.resolve();
    }
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items.splice(0, this.#head);
      this.#head = 0;
    }
  }

  /** Fails every waiting pack with `err` and stops the sweep. */
  failAll(err: Error): void {
    clearTimeout(this.#sweepTimer);
    for (let i = this.#head; i < this.#items.length; i++) this.#items[i]!.reject(err);
    this.#items.length = 0;
    this.#head = 0;
  }

  /** Fails packs whose deadline passed while the store could not keep up. */
  #armSweep(): void {
    if (this.#sweepTimer !== undefined) return;
    this.#sweepTimer = setTimeout(() => {
      this.#sweepTimer = undefined;
      const now = Date.now();
      let kept = this.#head;
      for (let i = this.#head; i < this.#items.length; i++) {
        const c = this.#items[i]!;
        if (c.deadline <= now) {
          const lastError = this.lastStoreError();
          const cause = lastError === undefined ? "" : `: ${String(lastError)}`;
          // Out of disk space: the pack has seqs and stays queued (a gap would stall the
          // watermark), so it is stored once there is room; telling how to learn its fate
          // without making copies is the useful answer.
          const queued = storeOutOfSpace(lastError)
            ? "; the pack stays queued and is stored once the store has room: a retry with the same message ids gets its seqs instead of storing copies"
            : "";
          c.reject(
            new NerveBusError(
              "unavailable",
              `pack not durable before its deadline; outcome unknown${cause}${queued}`,
              {
                cause: lastError,
              },
            ),
          );
        } else {
          this.#items[kept++] = c;
        }
      }
      this.#items.length = kept;
      if (this.#items.length > this.#head) this.#armSweep();
    }, SWEEP_MS);
    this.#sweepTimer.unref();
  }
}
