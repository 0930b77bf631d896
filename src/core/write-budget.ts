import { NerveBusError } from "./errors.js";

interface Waiter {
  readonly bytes: number;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
  timer: NodeJS.Timeout | undefined;
}

/**
 * Bounds the bytes buffered on the write path (assigned but not yet committed), broker-wide.
 * A pack that does not fit waits, in arrival order, until earlier writes commit or its deadline
 * passes; then it fails with RESOURCE_EXHAUSTED. This keeps memory bounded when the store is
 * slower than the producers, instead of buffering without limit.
 */
export class WriteBudget {
  readonly limitBytes: number;
  #used = 0;
  #waitingBytes = 0;
  readonly #waiters: Waiter[] = [];

  constructor(limitBytes: number) {
    this.limitBytes = limitBytes;
  }

  get usedBytes(): number {
    return this.#used;
  }

  /** Takes `bytes` of the budget, waiting until `deadline` (ms since epoch) at the latest. */
  acquire(bytes: number, deadline: number): Promise<void> | undefined {
    // A pack larger than the whole budget may still pass alone, or it could never pass.
    if (this.#waiters.length === 0 && (this.#used + bytes <= this.limitBytes || this.#used === 0)) {
      this.#used += bytes;
      return undefined;
    }
    // Packs waiting hold their decoded messages in memory too: past another budget's worth of
    // them, new packs are refused at once instead of queueing.
    if (this.#waitingBytes + bytes > this.limitBytes || deadline <= Date.now()) {
      return Promise.reject(this.#exhausted());
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { bytes, resolve, reject, timer: undefined };
      this.#waitingBytes += bytes;
      waiter.timer = setTimeout(() => {
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        this.#waitingBytes -= bytes;
        reject(this.#exhausted());
        this.#wake();
      }, deadline - Date.now());
      this.#waiters.push(waiter);
    });
  }

  #exhausted(): NerveBusError {
    return new NerveBusError(
      "resource_exhausted",
      `write buffer full (${this.#used} of ${this.limitBytes} bytes waiting for the store); retry with backoff`,
    );
  }

  /** Returns `bytes` to the budget and admits waiting packs that now fit. */
  release(bytes: number): void {
    this.#used -= bytes;
    this.#wake();
  }

  /** Fails every waiting pack (shutdown). */
  rejectAll(err: Error): void {
    for (const w of this.#waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    this.#waitingBytes = 0;
  }

  #wake(): void {
    while (this.#waiters.length > 0) {
      const w = this.#waiters[0]!;
      if (this.#used + w.bytes > this.limitBytes && this.#used !== 0) return;
      this.#waiters.shift();
      clearTimeout(w.timer);
      this.#waitingBytes -= w.bytes;
      this.#used += w.bytes;
      w.resolve();
    }
  }
}
