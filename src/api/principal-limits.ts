import { NerveBusError } from "../core/index.js";

/** What one principal (one client address without authentication) may hold at once. */
export interface PrincipalBounds {
  /** Client connections with calls in progress. */
  readonly connections: number;
  /** Receive and Publish streams open. */
  readonly streams: number;
}

/** Calls in progress per connection (peer address), per principal. */
type Connections = Map<string, number>;

/**
 * Per-principal shares of the broker's connections and streams (issue 12): one principal
 * cannot take every connection slot (--max-connections) or open streams until memory runs out,
 * however many addresses or connections it uses. A call over a share gets RESOURCE_EXHAUSTED
 * naming it, with a retry delay; calls in progress are never cut. `who` is how
 * principalKey names the caller: a principal when authentication is on, a client address
 * otherwise (as the publish quotas count).
 */
export class PrincipalLimits {
  readonly #connections = new Map<string, Connections>();
  readonly #streams = new Map<string, number>();

  constructor(readonly bounds: PrincipalBounds) {}

  /**
   * Counts one call of `who` on connection `peer` (a Receive stream when `stream`); throws
   * RESOURCE_EXHAUSTED when it would pass a share. Returns the function to call once the call
   * is over (calling it again does nothing).
   */
  enter(who: string, peer: string, stream: boolean): () => void {
    const conns = this.#connections.get(who) ?? new Map<string, number>();
    if (!conns.has(peer) && conns.size >= this.bounds.connections)
      throw exhausted(
        `${who} has calls in progress on ${conns.size} connections (limit ${this.bounds.connections}, --max-connections-per-principal)`,
      );
    const streams = this.#streams.get(who) ?? 0;
    if (stream && streams >= this.bounds.streams)
      throw exhausted(
        `${who} has ${streams} Receive and Publish streams open (limit ${this.bounds.streams}, --max-streams-per-principal)`,
      );
    conns.set(peer, (conns.get(peer) ?? 0) + 1);
    this.#connections.set(who, conns);
    if (stream) this.#streams.set(who, streams + 1);
    let left = false;
    return () => {
      if (left) return;
      left = true;
      const n = (conns.get(peer) ?? 1) - 1;
      if (n > 0) conns.set(peer, n);
      else conns.delete(peer);
      if (conns.size === 0) this.#connections.delete(who);
      if (!stream) return;
      const s = (this.#streams.get(who) ?? 1) - 1;
      if (s > 0) this.#streams.set(who, s);
      else this.#streams.delete(who);
    };
  }
}

function exhausted(why: string): NerveBusError {
  return new NerveBusError("resource_exhausted", `${why}; retry after 1000 ms`, { retryAfterMs: 1000 });
}
