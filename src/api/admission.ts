import * as grpc from "@grpc/grpc-js";
import { RETRY_AFTER_TRAILER } from "./status.js";

/** How many publish calls may hold their request in the broker at once. */
export interface AdmissionLimits {
  /** SendPack calls in progress on one connection. */
  readonly perConnection: number;
  /** SendPack calls in progress on the whole broker. */
  readonly total: number;
}

/** The call whose request bodies are large enough to need admission. */
const SEND_PACK = "/nervebus.v1.PublisherService/SendPack";

/**
 * Admission of publish calls before their body is read. grpc-js receives a request in full
 * before any handler runs, so a client could otherwise make the broker hold
 * max-concurrent-streams × max-pack-bytes per connection (2 connections × 100 streams of
 * 17 MiB took it past 3.5 GiB). A SendPack over either limit is answered RESOURCE_EXHAUSTED when
 * its headers arrive, with a retry delay, and its body is never held; the worst case is
 * `total` × the pack size limit.
 */
export class Admission {
  readonly #perPeer = new Map<string, number>();
  #total = 0;

  constructor(private readonly limits: AdmissionLimits) {}

  /** SendPack calls in progress now (status, tests). */
  get inProgress(): number {
    return this.#total;
  }

  /** The grpc-js server interceptor that applies the limits. */
  readonly interceptor: grpc.ServerInterceptor = (method, call) => {
    if (method.path !== SEND_PACK) return new grpc.ServerInterceptingCall(call);
    let peer: string | undefined;
    const release = () => {
      if (peer === undefined) return;
      const n = (this.#perPeer.get(peer) ?? 1) - 1;
      if (n <= 0) this.#perPeer.delete(peer);
      else this.#perPeer.set(peer, n);
      this.#total--;
      peer = undefined;
    };
    return new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (metadata, nextMetadata) => {
            const from = call.getPeer();
            const mine = this.#perPeer.get(from) ?? 0;
            const refusal =
              mine >= this.limits.perConnection
                ? `${mine} SendPack calls are in progress on this connection (limit ${this.limits.perConnection})`
                : this.#total >= this.limits.total
                  ? `${this.#total} SendPack calls are in progress on the broker (limit ${this.limits.total})`
                  : undefined;
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
            peer = from;
            this.#perPeer.set(from, mine + 1);
            this.#total++;
            nextMetadata(metadata);
          },
          onCancel: release,
        });
      },
      sendStatus: (status, next) => {
        release();
        next(status);
      },
    });
  };
}
