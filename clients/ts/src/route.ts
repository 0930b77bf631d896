import type { NerveBusError } from "./errors.js";

/**
 * Which connection a call about a topic goes out on, and what a failed call says about it:
 * publishers and receivers ask before each SendPack and each Receive stream, and report each
 * failure, so a client that connects to topic owners directly (OwnerRouter) can follow them.
 */
export interface Route<C> {
  /** The client to call for `topic` now. */
  pick(topic: string): C;
  /** A call for `topic` failed with `err` (its trailers may name the topic's owner). */
  failed(topic: string, err: NerveBusError): void;
}

/** Every call on one client: the client's own broker (which forwards to owners elsewhere). */
export function fixedRoute<C>(client: C): Route<C> {
  return { pick: () => client, failed: () => {} };
}
