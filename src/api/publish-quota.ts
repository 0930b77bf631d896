import { NerveBusError } from "../core/index.js";

/** Publish rates each principal may use (0 for no limit), and its share of packs in progress. */
export interface QuotaLimits {
  readonly messagesPerSecond: number;
  readonly bytesPerSecond: number;
  /** SendPack calls of one principal in progress at once (its share of the broker's). */
  readonly packsInProgress: number;
}

/** Whose quota a call uses: its principal, or its client address when authentication is off. */
export { principalKey as quotaHolder } from "./call-guard.js";

interface Bucket {
  messages: number;
  bytes: number;
  at: number;
}

/** Buckets not used for this long are forgotten (a principal gets a full bucket back). */
const IDLE_MS = 60_000;

/**
 * Publish rate quotas, as Kafka's client quotas: each principal (each client address when
 * authentication is off) has a bucket of messages and one of bytes, refilled at its rate and
 * holding at most one second's worth. A pack is admitted while both buckets hold something and
 * may take them below zero (a pack is never split); while a bucket is below zero the
 * principal's packs are refused with RESOURCE_EXHAUSTED, naming the quota and how long to wait.
 */
export class PublishQuota {
  readonly #buckets = new Map<string, Bucket>();
  readonly #inProgress = new Map<string, number>();
  #sweptAt = 0;

  constructor(private readonly limits: QuotaLimits) {}

  /**
   * Admits one pack of `who` (its rate, then its share of packs in progress: one principal
   * cannot hold every slot of --max-packs-in-progress while the store is slow); throws
   * RESOURCE_EXHAUSTED otherwise. Returns the function to call once the pack is answered.
   */
  admit(who: string, messages: number, bytes: number): () => void {
    const mine = this.#inProgress.get(who) ?? 0;
    if (mine >= this.limits.packsInProgress) {
      throw new NerveBusError(
        "resource_exhausted",
        `${who} has ${mine} SendPack calls in progress (limit ${this.limits.packsInProgress}, --max-packs-per-principal); retry after 100 ms`,
        { retryAfterMs: 100 },
      );
    }
    this.take(who, messages, bytes);
    this.#inProgress.set(who, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (this.#inProgress.get(who) ?? 1) - 1;
      if (n <= 0) this.#inProgress.delete(who);
      else this.#inProgress.set(who, n);
    };
  }

  get enabled(): boolean {
    return this.limits.messagesPerSecond > 0 || this.limits.bytesPerSecond > 0;
  }

  /**
   * Takes `messages` and `bytes` from `who`'s buckets, or throws RESOURCE_EXHAUSTED (with
   * `retryAfterMs` on the error) when either is empty.
   */
  take(who: string, messages: number, bytes: number, now = performance.now()): void {
    if (!this.enabled) return;
    this.#sweep(now);
    const { messagesPerSecond: mps, bytesPerSecond: bps } = this.limits;
    let b = this.#buckets.get(who);
    if (b === undefined) {
      b = { messages: mps, bytes: bps, at: now };
      this.#buckets.set(who, b);
    }
    const elapsed = (now - b.at) / 1000;
    b.at = now;
    if (mps > 0) b.messages = Math.min(mps, b.messages + elapsed * mps);
    if (bps > 0) b.bytes = Math.min(bps, b.bytes + elapsed * bps);
    const waitMs = Math.max(
      mps > 0 && b.messages <= 0 ? ((1 - b.messages) / mps) * 1000 : 0,
      bps > 0 && b.bytes <= 0 ? ((1 - b.bytes) / bps) * 1000 : 0,
    );
    if (waitMs > 0) {
      const retryAfterMs = Math.ceil(waitMs);
      const rates = [mps > 0 ? `${mps} msg/s` : "", bps > 0 ? `${bps} bytes/s` : ""].filter((r) => r !== "");
      throw new NerveBusError(
        "resource_exhausted",
        `${who} is over its publish quota (${rates.join(", ")}); retry after ${retryAfterMs} ms`,
        { retryAfterMs },
      );
    }
    if (mps > 0) b.messages -= messages;
    if (bps > 0) b.bytes -= bytes;
  }

  #sweep(now: number): void {
    if (now - this.#sweptAt < IDLE_MS) return;
    this.#sweptAt = now;
    for (const [who, b] of this.#buckets) if (now - b.at > IDLE_MS) this.#buckets.delete(who);
  }
}
