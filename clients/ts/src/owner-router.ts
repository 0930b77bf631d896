import { type NerveBusError, StatusCode } from "./errors.js";
import type { Route } from "./route.js";

/** Trailer of an UNAVAILABLE naming the broker that owns the call's topic (`--cluster`). */
export const OWNER_TRAILER = "nervebus-owner";

/**
 * How long a located owner is trusted before it is asked again: an owner that hands a topic
 * over forwards the calls it still gets, so nothing fails, but they take a detour until then.
 */
const RELOCATE_AFTER_MS = 10_000;

/** The clients of one broker connection. */
export interface Connection<P, S> {
  readonly publisher: P;
  readonly subscriber: S;
  close(): void;
}

/**
 * Sends each topic's publishes and Receive streams to the broker that owns the topic (several
 * brokers on one database, `--cluster`), found with LocateTopic through the client's own
 * broker. Until the owner is known, and whenever it is in doubt, calls go to the client's own
 * broker, which forwards them: a call is never held back waiting for a lookup. An UNAVAILABLE
 * naming the owner in its trailer moves the topic there at once; any other UNAVAILABLE (the
 * owner died, or a stream ended because the topic moved) sends the topic back to the own
 * broker and asks again. The publisher's retries (same message ids) and the receiver's
 * reconnects do the rest, so ownership changes lose no confirmed publish and no acked message.
 */
export class OwnerRouter<P, S> {
  readonly #home: Connection<P, S>;
  readonly #homeAddress: string;
  readonly #connect: (address: string) => Connection<P, S>;
  readonly #locate: (topic: string) => Promise<string>;
  readonly #connections = new Map<string, Connection<P, S>>();
  /** Known owners by topic ("" for the own broker) and when they were learnt. */
  readonly #owners = new Map<string, { address: string; at: number }>();
  readonly #locating = new Set<string>();
  #closed = false;

  /** Routes of publish calls (SendPack). */
  readonly publishers: Route<P> = {
    pick: (topic) => this.#pick(topic).publisher,
    failed: (topic, err) => this.#failed(topic, err),
  };

  /** Routes of Receive streams. */
  readonly subscribers: Route<S> = {
    pick: (topic) => this.#pick(topic).subscriber,
    failed: (topic, err) => this.#failed(topic, err),
  };

  constructor(
    home: Connection<P, S>,
    homeAddress: string,
    connect: (address: string) => Connection<P, S>,
    locate: (topic: string) => Promise<string>,
  ) {
    this.#home = home;
    this.#homeAddress = homeAddress;
    this.#connect = connect;
    this.#locate = locate;
  }

  /** The owner of `topic` as last learnt: its address, or "" for the own broker or unknown. */
  ownerOf(topic: string): string {
    return this.#owners.get(topic)?.address ?? "";
  }

  /** Closes the connections to other brokers (not the own one). */
  close(): void {
    this.#closed = true;
    for (const c of this.#connections.values()) c.close();
    this.#connections.clear();
  }

  #pick(topic: string): Connection<P, S> {
    const known = this.#owners.get(topic);
    if (known === undefined || performance.now() - known.at > RELOCATE_AFTER_MS) this.#relocate(topic);
    if (known === undefined || known.address === "" || this.#closed) return this.#home;
    let c = this.#connections.get(known.address);
    if (c === undefined) {
      c = this.#connect(known.address);
      this.#connections.set(known.address, c);
    }
    return c;
  }

  #failed(topic: string, err: NerveBusError): void {
    if (err.code !== StatusCode.UNAVAILABLE) return;
    const owner = err.metadata.get(OWNER_TRAILER)[0];
    if (typeof owner === "string" && owner !== "") {
      this.#learn(topic, owner);
      return;
    }
    this.#owners.delete(topic);
    this.#relocate(topic);
  }

  #learn(topic: string, address: string): void {
    this.#owners.set(topic, { address: address === this.#homeAddress ? "" : address, at: performance.now() });
  }

  #relocate(topic: string): void {
    if (this.#closed || this.#locating.has(topic)) return;
    this.#locating.add(topic);
    this.#locate(topic)
      .then(
        (address) => this.#learn(topic, address),
        // The owner known so far (or the own broker) keeps serving the topic; the next call
        // that fails, or the next after RELOCATE_AFTER_MS, asks again.
        () => {},
      )
      .finally(() => this.#locating.delete(topic));
  }
}
