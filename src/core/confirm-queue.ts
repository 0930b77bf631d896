import { NerveBusError, storeOutOfSpace } from "./errors.js";

interface PendingConfirm {
  readonly lastSeq: number;
  readonly deadline: number;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

/** What a resolved slot holds until the queue is compacted. */
const SETTLED: PendingConfirm = { lastSeq: 0, deadline: 0, resolve() {}, reject() {} };

/** The longest delay setTimeout takes (2^31 - 1 ms). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The packs of one topic waiting for their confirm, in arrival order: each resolves once the
 * writer watermark covers its last seq, or fails with UNAVAILABLE (outcome unknown: it may still
 * become durable) once its deadline passes first. One array with a moving head, so confirming
 * costs no allocation per pack; one timer, at the earliest deadline of the packs waiting (never
 * later than any of them), so each pack is answered at its deadline: a fixed sweep answered up
 * to its period late, after the call's own deadline, and the caller got grpc-js's bare
 * DEADLINE_EXCEEDED instead of "outcome unknown".
 */
export class ConfirmQueue {
  readonly #items: PendingConfirm[] = [];
  #head = 0;
  #timer: NodeJS.Timeout | undefined;
  /** The deadline #timer fires at; Infinity while none is armed. ≤ every waiting pack's deadline. */
  #armedAt = Number.POSITIVE_INFINITY;

  constructor(
    /** The store's last error while writes are failing, named in a deadline failure. */
    private readonly lastStoreError: () => unknown,
  ) {}

  /** Resolves with `value` once `settle` reaches `lastSeq`; rejects at `deadline`. */
  wait<T>(lastSeq: number, deadline: number, value: T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#items.push({ lastSeq, deadline, resolve: () => resolve(value), reject });
      // Packs of one client arrive with later and later deadlines: re-arming happens only for
      // one earlier than every pack waiting (a shorter call deadline), not per pack.
      if (deadline < this.#armedAt) this.#arm(deadline);
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

  /** Fails every waiting pack with `err` and stops the timer. */
  failAll(err: Error): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedAt = Number.POSITIVE_INFINITY;
    for (let i = this.#head; i < this.#items.length; i++) this.#items[i]!.reject(err);
    this.#items.length = 0;
    this.#head = 0;
  }

  #arm(at: number): void {
    clearTimeout(this.#timer);
    this.#armedAt = at;
    // Capped at setTimeout's limit (~24.8 days), past which it would fire at once; firing early
    // only re-arms.
    this.#timer = setTimeout(() => this.#expire(), Math.min(MAX_TIMER_MS, Math.max(0, at - Date.now())));
    this.#timer.unref();
  }

  /**
   * Fails packs whose deadline passed while the store could not keep up, then arms the timer
   * for the earliest deadline left. Runs once per earliest deadline: packs confirmed before it
   * cost nothing here.
   */
  #expire(): void {
    this.#timer = undefined;
    this.#armedAt = Number.POSITIVE_INFINITY;
    const now = Date.now();
    let kept = this.#head;
    let next = Number.POSITIVE_INFINITY;
    for (let i = this.#head; i < this.#items.length; i++) {
      const c = this.#items[i]!;
      if (c.deadline <= now) {
        c.reject(this.#notDurable());
      } else {
        this.#items[kept++] = c;
        if (c.deadline < next) next = c.deadline;
      }
    }
    this.#items.length = kept;
    if (next !== Number.POSITIVE_INFINITY) this.#arm(next);
  }

  /** The answer to a pack not confirmed by its deadline: it may still be written. */
  #notDurable(): NerveBusError {
    const lastError = this.lastStoreError();
    const cause = lastError === undefined ? "" : `: ${String(lastError)}`;
    // Out of disk space: the pack has seqs and stays queued (a gap would stall the watermark),
    // so it is stored once there is room; telling how to learn its fate without making copies
    // is the useful answer.
    const queued = storeOutOfSpace(lastError)
      ? "; the pack stays queued and is stored once the store has room: a retry with the same message ids gets its seqs instead of storing copies"
      : "";
    return new NerveBusError(
      "unavailable",
      `pack not durable before its deadline; outcome unknown${cause}${queued}`,
      {
        cause: lastError,
      },
    );
  }
}
