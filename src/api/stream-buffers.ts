/** Below this a connection's share is not cut further: one answer of deliveries fits. */
const MIN_CONNECTION_SHARE = 1 << 20;

/** One connection's streams: what they hold, and their callbacks. */
interface Connection {
  bytes: number;
  /** Each stream's "hold", called when the connection goes over its share. */
  readonly holders: Set<() => void>;
  /** Streams waiting for the connection to be below half its share again. */
  readonly waiting: Set<() => void>;
}

/**
 * One bound on what all Receive streams together hold for their readers: deliveries and ack
 * confirmations handed to grpc-js and not yet written to the transport, and confirmations
 * waiting for a state write (--stream-buffer-bytes, a share of the memory budget). Each client
 * connection gets an equal share of it (at least 1 MiB), so a client whose streams never read
 * is held at its own share while other clients' streams go on. A stream also has its own bound
 * (see ReceiveSession). A connection over its share has all its streams held (each would
 * otherwise send one more answer before noticing), and they are called back once it is below
 * half its share. The total stays within the bound plus about one answer per connection.
 */
export class StreamBuffers {
  #used = 0;
  readonly #connections = new Map<string, Connection>();

  constructor(readonly limitBytes: number) {}

  /** Bytes held by all streams (status, metrics). */
  get usedBytes(): number {
    return this.#used;
  }

  /** What one connection's streams may hold now. */
  #share(): number {
    return Math.max(MIN_CONNECTION_SHARE, Math.floor(this.limitBytes / Math.max(1, this.#connections.size)));
  }

  #connection(peer: string): Connection {
    let c = this.#connections.get(peer);
    if (c === undefined) {
      c = { bytes: 0, holders: new Set(), waiting: new Set() };
      this.#connections.set(peer, c);
    }
    return c;
  }

  /** Whether the streams of connection `peer` hold more than its share. */
  full(peer: string): boolean {
    return (this.#connections.get(peer)?.bytes ?? 0) > this.#share();
  }

  /**
   * Counts `delta` more (or, negative, fewer) bytes for connection `peer`. Going over its share
   * holds every stream of the connection; once below half of it, the waiting are woken.
   */
  resize(peer: string, delta: number): void {
    const c = this.#connection(peer);
    const share = this.#share();
    const before = c.bytes;
    c.bytes += delta;
    this.#used += delta;
    if (before <= share && c.bytes > share) for (const hold of c.holders) hold();
    if (delta < 0 && c.waiting.size > 0 && c.bytes <= share / 2) {
      const waiting = [...c.waiting];
      c.waiting.clear();
      for (const wake of waiting) wake();
    }
    this.#forget(peer, c);
  }

  /** Calls `wake` once connection `peer` is below half its share (once; forget it with `cancel`). */
  wait(peer: string, wake: () => void): void {
    this.#connection(peer).waiting.add(wake);
  }

  cancel(peer: string, wake: () => void): void {
    const c = this.#connections.get(peer);
    c?.waiting.delete(wake);
    if (c) this.#forget(peer, c);
  }

  /** Registers a stream's `hold`, called whenever its connection goes over its share. */
  onFull(peer: string, hold: () => void): void {
    this.#connection(peer).holders.add(hold);
  }

  offFull(peer: string, hold: () => void): void {
    const c = this.#connections.get(peer);
    c?.holders.delete(hold);
    if (c) this.#forget(peer, c);
  }

  /** A connection with nothing held and no stream registered no longer takes a share. */
  #forget(peer: string, c: Connection): void {
    if (c.bytes === 0 && c.holders.size === 0 && c.waiting.size === 0) this.#connections.delete(peer);
  }
}
