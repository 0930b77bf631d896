import * as grpc from "@grpc/grpc-js";
import { RETRY_AFTER_TRAILER } from "./status.js";

/** How many calls the broker takes in at once, before their requests are read. */
export interface AdmissionLimits {
  /** SendPack calls in progress on one connection. */
  readonly perConnection: number;
  /** SendPack calls in progress on the whole broker. */
  readonly total: number;
  /** Client connections with a call in progress (health checks and reflection aside). */
  readonly connections: number;
}

/**
 * The calls whose requests are large enough to need admission: SendPack, and Publish streams,
 * which hold up to one pack's worth of credit for as long as they are open.
 */
const PUBLISH_CALLS = new Set([
  "/nervebus.v1.PublisherService/SendPack",
  "/nervebus.v1.PublisherService/Publish",
]);

/** Calls that are never refused here: load balancers and tools must always get an answer. */
function alwaysOpen(path: string): boolean {
  return path.startsWith("/grpc.health.v1.") || path.startsWith("/grpc.reflection.");
}

/** Decrements `key`'s count in `counts`, dropping it at zero. */
function release(counts: Map<string, number>, key: string): void {
  const n = (counts.get(key) ?? 1) - 1;
  if (n <= 0) counts.delete(key);
  else counts.set(key, n);
}

/**
 * Admission of calls when their headers arrive, before any request body is read (grpc-js
 * receives a request in full before a handler runs):
 * - publish calls: a client could otherwise make the broker hold max-concurrent-streams ×
 *   max-pack-bytes per connection (2 connections × 100 streams of 17 MiB took it past 3.5 GiB).
 *   A SendPack over `perConnection` or `total` is refused; the worst case is `total` × the pack
 *   size limit.
 * - connections: at most `connections` clients may have calls in progress; a call from one more
 *   is refused (idle connections cost little and are closed after --max-connection-idle-ms).
 * A refusal is RESOURCE_EXHAUSTED naming the limit, with a retry delay, and its body is never
 * held.
 */
export class Admission {
  /** Per connection (peer address): SendPack calls in progress. */
  readonly #packs = new Map<string, number>();
  /** Per connection: calls of any kind in progress. */
  readonly #calls = new Map<string, number>();
  #total = 0;

  constructor(private readonly limits: AdmissionLimits) {}

  /** SendPack calls in progress now (status, tests). */
  get inProgress(): number {
    return this.#total;
  }

  /** Why a call from `peer` to `path` is refused now, or undefined to admit it. */
  #refusal(path: string, peer: string): string | undefined {
    if (!this.#calls.has(peer) && this.#calls.size >= this.limits.connections)
      return `${this.#calls.size} connections have calls in progress (limit ${this.limits.connections}, --max-connections)`;
    if (!PUBLISH_CALLS.has(path)) return undefined;
    const mine = this.#packs.get(peer) ?? 0;
    if (mine >= this.limits.perConnection)
      return `${mine} SendPack calls and Publish streams are in progress on this connection (limit ${this.limits.perConnection})`;
    if (this.#total >= this.limits.total)
      return `${this.#total} SendPack calls and Publish streams are in progress on the broker (limit ${this.limits.total})`;
    return undefined;
  }

  /** The grpc-js server interceptor that applies the limits. */
  readonly interceptor: grpc.ServerInterceptor = (method, call) => {
    if (alwaysOpen(method.path)) return new grpc.ServerInterceptingCall(call);
    const isPack = PUBLISH_CALLS.has(method.path);
    let admitted: string | undefined;
    const done = () => {
      if (admitted === undefined) return;
      release(this.#calls, admitted);
      if (isPack) {
        release(this.#packs, admitted);
        this.#total--;
      }
      admitted = undefined;
    };
    return new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (metadata, nextMetadata) => {
            const peer = call.getPeer();
            const refusal = this.#refusal(method.path, peer);
            if (refusal !== undefined) {
              const trailer = new grpc.Metadata();
              trailer.set(RETRY_AFTER_TRAILER, "100");
              call.sendStatus({
                code: grpc.status.RESOURCE_EXHAUSTED,
                details: `${refusal}; wait for answers before sending more, retry after 100 ms`,
                metadata: trailer,
              });
              return;
            }
            admitted = peer;
            this.#calls.set(peer, (this.#calls.get(peer) ?? 0) + 1);
            if (isPack) {
              this.#packs.set(peer, (this.#packs.get(peer) ?? 0) + 1);
              this.#total++;
            }
            nextMetadata(metadata);
          },
          onCancel: done,
        });
      },
      sendStatus: (status, next) => {
        done();
        next(status);
      },
    });
  };
}
