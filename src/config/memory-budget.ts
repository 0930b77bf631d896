/** The settings whose defaults are shares of --memory-budget. */
export type BudgetedKey =
  | "packBytesInProgress"
  | "writeBufferBytes"
  | "tailCacheTotalBytes"
  | "readAheadBytes"
  | "leaseBytes"
  | "streamBufferBytes";

/**
 * What each part of the broker's memory gets of --memory-budget when its own flag is not given
 * (issue 12: one budget for the whole broker). The shares add up to the whole budget, so the
 * parts together never hold more than it, whatever clients do; what the Node runtime itself
 * needs (code, heap bookkeeping, garbage not collected yet) comes on top. Requests come first:
 * every message in the write buffer also belongs to a pack in progress, so the two overlap and
 * the sum is an upper bound.
 */
export const MEMORY_SHARES: Readonly<Record<BudgetedKey, number>> = {
  // SendPack request bytes held from when their body arrives until they are answered.
  packBytesInProgress: 0.25,
  // Messages assigned seqs and waiting for the store.
  writeBufferBytes: 0.1875,
  // Recent messages of all topics, for subscribers that keep up.
  tailCacheTotalBytes: 0.1875,
  // Rows lagging subscriptions read ahead from the store.
  readAheadBytes: 0.125,
  // Delivered messages not acked yet: their leases and redelivery entries, their ordering keys,
  // and messages held back behind those keys (LeaseShare).
  leaseBytes: 0.125,
  // Answers (deliveries, ack confirmations) waiting for slow readers, all streams together.
  streamBufferBytes: 0.125,
};

/**
 * 192 MiB: the overload benchmark (16 connections × 8 packs of 1000 × 1 KiB in flight, no
 * consumer) stays under 300 MB RSS with it, the Node runtime's ~100 MB included.
 */
export const DEFAULT_MEMORY_BUDGET = 192 << 20;

/** The share of `budget` that `key` gets, in whole bytes. */
export function budgetShare(key: BudgetedKey, budget: number): number {
  return Math.floor(budget * MEMORY_SHARES[key]);
}

/**
 * Fills in every budgeted setting not given explicitly (`given`: keys set by a flag, the
 * environment or the config file) from `config.memoryBudget`.
 */
export function applyMemoryBudget(
  config: Record<BudgetedKey, number> & { readonly memoryBudget: number },
  given: ReadonlySet<string>,
): void {
  for (const key of Object.keys(MEMORY_SHARES) as BudgetedKey[])
    if (!given.has(key)) config[key] = budgetShare(key, config.memoryBudget);
}
