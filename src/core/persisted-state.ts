import type { PendingEntry } from "./pending-entry.js";

/**
 * A subscription's state above its floor as the pointer row stores it: JSON, with short keys
 * because it is rewritten every few milliseconds under load.
 */
export interface PersistedState {
  /** Acked ranges above the floor. */
  a: [number, number][];
  /** Messages delivered but not acked: [seq, attempts so far, not-before ms, ordering key?]. */
  p: ([number, number, number] | [number, number, number, string])[];
  /**
   * The highest seq delivered so far (absent in blobs of older brokers): plain first attempts
   * have no entry, so without it a restart would take an ack of one of them, arriving before
   * its redelivery, for an ack of a seq never delivered and ignore it.
   */
  h?: number;
}

/**
 * Beyond this many ranges or pending entries the persisted state is truncated (the lost part
 * means some messages are delivered again after a restart, never that one is lost).
 */
export const MAX_PERSISTED_ENTRIES = 50_000;

/** Reads a stored state blob; null or empty is the state of a subscription with nothing above its floor. */
export function decodePersistedState(state: Uint8Array | null): PersistedState {
  if (state === null || state.byteLength === 0) return { a: [], p: [] };
  const parsed = JSON.parse(Buffer.from(state).toString("utf8")) as Partial<PersistedState>;
  const decoded: PersistedState = { a: parsed.a ?? [], p: parsed.p ?? [] };
  if (parsed.h !== undefined) decoded.h = parsed.h;
  return decoded;
}

/**
 * The blob to store for acked `ranges` above the floor, the `pending` entries (at most
 * MAX_PERSISTED_ENTRIES of each; an entry a restart would treat the same without it is left
 * out) and the `highestDelivered` seq (left out when 0).
 */
export function encodePersistedState(
  ranges: readonly [number, number][],
  pending: ReadonlyMap<number, PendingEntry>,
  now: number,
  highestDelivered = 0,
): Uint8Array {
  const entries: PersistedState["p"] = [];
  for (const [seq, p] of pending) {
    if (entries.length >= MAX_PERSISTED_ENTRIES) break;
    const notBefore = p.consumer ? 0 : p.notBefore;
    // A message out on its first attempt, with no delay and no ordering key, needs no entry:
    // after a restart it is simply delivered again from the floor. Leaving those out keeps
    // the state (written every few ms under load) small even with windows of 100 000.
    if (p.attempts <= 1 && notBefore <= now && p.key === "") continue;
    entries.push(p.key === "" ? [seq, p.attempts, notBefore] : [seq, p.attempts, notBefore, p.key]);
  }
  const state: PersistedState = { a: ranges.slice(0, MAX_PERSISTED_ENTRIES), p: entries };
  if (highestDelivered > 0) state.h = highestDelivered;
  return Buffer.from(JSON.stringify(state));
}
