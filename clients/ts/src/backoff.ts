/** Exponential backoff settings: waits grow from `initialMs` by `multiplier` up to `maxMs`. */
export interface BackoffOptions {
  /** First wait, in ms. */
  readonly initialMs?: number;
  /** Longest wait, in ms. */
  readonly maxMs?: number;
  /** Growth factor per attempt. */
  readonly multiplier?: number;
  /**
   * Fraction of each wait that is random: 0.5 means a wait is between 50 % and 100 % of the
   * exponential value. Jitter keeps many clients from retrying in lockstep.
   */
  readonly jitter?: number;
}

/** Fully resolved backoff settings. */
export type ResolvedBackoff = Required<BackoffOptions>;

/** Fills in defaults. */
export function resolveBackoff(
  options: BackoffOptions | undefined,
  defaults: ResolvedBackoff,
): ResolvedBackoff {
  const r = { ...defaults, ...stripUndefined(options ?? {}) };
  if (
    !(r.initialMs >= 0) ||
    !(r.maxMs >= r.initialMs) ||
    !(r.multiplier >= 1) ||
    !(r.jitter >= 0 && r.jitter <= 1)
  )
    throw new RangeError(
      `backoff: need 0 ≤ initialMs ≤ maxMs, multiplier ≥ 1 and 0 ≤ jitter ≤ 1, got ${JSON.stringify(r)}`,
    );
  return r;
}

/** The wait before retry number `attempt` (0 for the first retry), jitter applied. */
export function backoffDelay(b: ResolvedBackoff, attempt: number): number {
  const base = Math.min(b.maxMs, b.initialMs * b.multiplier ** attempt);
  return base * (1 - b.jitter * Math.random());
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** A copy of `o` without its undefined properties (so spreads keep defaults). */
export function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
