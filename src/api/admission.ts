import * as http2 from "node:http2";
import * as grpc from "@grpc/grpc-js";
import type { PeerAuth } from "./peer-auth.js";
import { RETRY_AFTER_TRAILER } from "./status.js";

/** How many calls the broker takes in at once, before their requests are read. */
export interface AdmissionLimits {
  /** SendPack calls in progress on one connection. */
  readonly perConnection: number;
  /** SendPack calls in progress on the whole broker. */
  readonly total: number;
  /** Client connections with a call in progress (health checks and reflection aside). */
  readonly connections: number;
  /** SendPack request bytes held at once (--pack-bytes-in-progress, a share of the memory budget). */
  readonly bytes: number;
  /** What a pack whose body has not arrived yet is counted as (--max-pack-bytes). */
  readonly packBytes: number;
  /**
   * The most one request may inflate to (grpc's max receive length): what a compressed body
   * is counted as until it is decoded, since its declared length says nothing of that.
   */
  readonly requestBytes: number;
}

/**
 * Decoding a message costs this much beyond its bytes (a JS object and a Buffer view): counted,
 * so packs of many tiny messages are not admitted as if they were free.
 */
const PER_MESSAGE_OVERHEAD = 96;

/** The parts of grpc-js's HTTP/2 stream admission uses. */
interface RequestStream {
  prependListener(event: "data", listener: (chunk: Buffer) => void): unknown;
  removeListener(event: "data", listener: (chunk: Buffer) => void): unknown;
  /** RST_STREAM with this code once the answer is written (node:http2's Http2Stream.close). */
  close(code: number): void;
}

/**
 * The HTTP/2 stream under a server call: grpc-js 1.14 keeps it on its base call, which each
 * ServerInterceptingCall wraps as `nextCall`. Undefined should that change (admission then
 * counts a pack's bytes when it is decoded, no earlier).
 */
function requestStream(call: unknown): RequestStream | undefined {
  let c = call as { nextCall?: unknown; stream?: Partial<RequestStream> } | undefined;
  for (let depth = 0; c !== undefined && depth < 8; depth++) {
    if (typeof c.stream?.prependListener === "function" && typeof c.stream.close === "function")
      return c.stream as RequestStream;
    c = c.nextCall as typeof c;
  }
  return undefined;
}

/**
 * Calls `onLength` with the length each gRPC message of a request declares in its 5-byte
 * prefix and whether it is compressed, as soon as that prefix arrives (before grpc-js buffers
 * the message), until `onLength` returns false. A stream's messages follow each other, so
 * after a prefix its declared length of body is skipped, across chunks.
 */
function onDeclaredLengths(
  stream: RequestStream,
  onLength: (bytes: number, compressed: boolean) => boolean,
): void {
  let head = Buffer.alloc(0);
  /** Body bytes of the current message not seen yet. */
  let body = 0;
  const listener = (chunk: Buffer) => {
    let at = 0;
    while (at < chunk.length) {
      if (body > 0) {
        const n = Math.min(body, chunk.length - at);
        body -= n;
        at += n;
        continue;
      }
      const part = chunk.subarray(at, at + 5 - head.length);
      head = Buffer.concat([head, part]);
      at += part.length;
      if (head.length < 5) return;
      body = head.readUInt32BE(1);
      const compressed = head[0] !== 0;
      head = Buffer.alloc(0);
      if (!onLength(body, compressed)) {
        stream.removeListener("data", listener);
        return;
      }
    }
  };
  stream.prependListener("data", listener);
}

/** The memory a decoded SendPackRequest holds, as admission counts it. */
function heldBytes(request: unknown): number {
  const messages = (request as { messages?: unknown }).messages;
  if (!Array.isArray(messages)) return 0;
  let n = 0;
  for (const m of messages as { data?: Uint8Array; attributes?: Record<string, string> }[]) {
    n += PER_MESSAGE_OVERHEAD + (m.data?.byteLength ?? 0);
    for (const k in m.attributes) n += k.length + (m.attributes[k]?.length ?? 0);
  }
  return n;
}

/**
 * The calls whose requests are large enough to need admission: SendPack, and Publish streams,
 * which hold up to one pack's worth of credit for as long as they are open.
 */
const PUBLISH_CALLS = new Set([
  "/nervebus.v1.PublisherService/SendPack",
  "/nervebus.v1.PublisherService/Publish",
]);

/**
 * The calls whose request bytes are counted against --pack-bytes-in-progress. A SendPack is
 * one message, its length declared up front, counted until its call ends. Each message of a
 * Publish stream is counted from its prefix until it is decoded (a compressed one inflates to
 * as much as a SendPack's); once decoded, a batch is bounded by the stream's credit (one
 * pack's worth), the stream being counted as a pack in progress.
 */
const SEND_PACK = "/nervebus.v1.PublisherService/SendPack";
const PUBLISH = "/nervebus.v1.PublisherService/Publish";

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
 * - request bytes: a SendPack counts as a typical pack from its headers, then as the length the
 *   gRPC prefix of its body declares (a compressed body: the most a request may inflate to,
 *   since grpc-js inflates it before any handler runs; 64 gzip bodies of 0.5 MiB held 640 MiB
 *   inflated), then as what its decoded messages hold. One that would
 *   take the count past `bytes` is refused at its headers or, if its body is larger than
 *   typical, at its first bytes, before grpc-js buffers the rest (which is then dropped). A
 *   pack alone is admitted whatever its size, or a budget below --max-pack-bytes would refuse
 *   every pack. Each message of a Publish stream counts the same way from its prefix until it
 *   is decoded (32 streams of 10 MiB gzip batches took peak RSS to ~500 MB against 192 MiB);
 *   one that does not fit ends its stream so.
 * A refusal is RESOURCE_EXHAUSTED naming the limit, with a retry delay, and its body is never
 * held. A call another broker of the cluster forwarded (verified by `peers`) counts as its
 * client's connection, not the one between the brokers, which carries every client's calls.
 */
export class Admission {
  /** Per connection (peer address): SendPack calls in progress. */
  readonly #packs = new Map<string, number>();
  /** Per connection: calls of any kind in progress. */
  readonly #calls = new Map<string, number>();
  #total = 0;
  /** Request bytes of the SendPacks in progress (#typical for those whose body has not started). */
  #bytes = 0;
  /**
   * What a pack whose body has not started is counted as: the running average of recent
   * packs' lengths. Refusing at the headers costs the client nothing (its body is not sent
   * through); refusing once the body has started wastes what was sent, so the headers are
   * judged by what packs usually are, and the first bytes of the body by what this one is.
   */
  #typical = 64 << 10;

  constructor(
    private readonly limits: AdmissionLimits,
    private readonly peers?: PeerAuth,
  ) {}

  /** SendPack calls in progress now (status, tests). */
  get inProgress(): number {
    return this.#total;
  }

  /** Request bytes the SendPacks in progress hold (declared lengths of bodies on their way). */
  get heldBytes(): number {
    return this.#bytes;
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

  /**
   * Why a SendPack of `bytes` more is refused now, or undefined to take it in (`held`: what
   * this pack already counts in #bytes).
   */
  #bytesRefusal(bytes: number, held: number): string | undefined {
    const others = this.#bytes - held;
    if (others === 0 || others + bytes <= this.limits.bytes) return undefined;
    return `SendPack and Publish requests in progress hold ${others} bytes and this one is ${bytes} (limit ${this.limits.bytes}, --pack-bytes-in-progress, a share of --memory-budget)`;
  }

  /** The grpc-js server interceptor that applies the limits. */
  readonly interceptor: grpc.ServerInterceptor = (method, call) => {
    if (alwaysOpen(method.path)) return new grpc.ServerInterceptingCall(call);
    const isPack = PUBLISH_CALLS.has(method.path);
    const byBytes = method.path === SEND_PACK;
    const isStream = method.path === PUBLISH;
    let admitted: string | undefined;
    /**
     * What this call counts in #bytes: a SendPack its declared length once its body starts,
     * then its size; a Publish stream the messages it is reading and has not decoded yet.
     */
    let reserved = 0;
    /** The length its body declares, once its first bytes arrived (compressed: before inflating). */
    let declaredBytes: number | undefined;
    /** A Publish stream: what each message read and not decoded yet counts, in their order. */
    const undecoded: number[] = [];
    /** Refused after it was admitted (its body did not fit): its message is not passed on. */
    let refused = false;
    const refuse = (why: string) => {
      const trailer = new grpc.Metadata();
      trailer.set(RETRY_AFTER_TRAILER, "100");
      call.sendStatus({
        code: grpc.status.RESOURCE_EXHAUSTED,
        details: `${why}; wait for answers before sending more, retry after 100 ms`,
        metadata: trailer,
      });
      // The client sends its body whatever the answer, and grpc-js would read all of it,
      // join it and decode it before dropping it: under overload most of the broker's CPU
      // and memory went to packs already refused. RST_STREAM NO_ERROR after the answer (HTTP/2
      // 8.1: the response is complete, stop sending) ends the stream; node:http2 sends it once
      // the trailers are written.
      requestStream(call)?.close(http2.constants.NGHTTP2_NO_ERROR);
    };
    const count = (bytes: number) => {
      this.#bytes += bytes - reserved;
      reserved = bytes;
    };
    const done = () => {
      if (admitted === undefined) return;
      release(this.#calls, admitted);
      if (isPack) {
        release(this.#packs, admitted);
        this.#total--;
        this.#bytes -= reserved;
        reserved = 0;
      }
      admitted = undefined;
    };
    /** The most a message declaring `declared` bytes holds before it is decoded. */
    const inflated = (declared: number, compressed: boolean) =>
      compressed ? Math.max(declared, this.limits.requestBytes) : declared;
    /** Counts this call as `bytes` from now on, or refuses it if they do not fit. */
    const hold = (bytes: number): boolean => {
      const why = this.#bytesRefusal(bytes, reserved);
      if (why === undefined) {
        count(bytes);
        return true;
      }
      refused = true;
      done();
      refuse(why);
      return false;
    };
    return new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (metadata, nextMetadata) => {
            const peer = this.peers?.forwardedClient(metadata)?.peer ?? call.getPeer();
            const refusal =
              this.#refusal(method.path, peer) ??
              (byBytes ? this.#bytesRefusal(this.#typical, 0) : undefined);
            if (refusal !== undefined) {
              refuse(refusal);
              return;
            }
            admitted = peer;
            this.#calls.set(peer, (this.#calls.get(peer) ?? 0) + 1);
            if (isPack) {
              this.#packs.set(peer, (this.#packs.get(peer) ?? 0) + 1);
              this.#total++;
            }
            const stream = byBytes || isStream ? requestStream(call) : undefined;
            if (byBytes) count(this.#typical);
            if (byBytes && stream !== undefined)
              onDeclaredLengths(stream, (declared, compressed) => {
                if (admitted === undefined) return false;
                declaredBytes = declared;
                // What packs usually are on the wire: one compressed pack must not make every header look big.
                this.#typical = Math.round(this.#typical * 0.875 + declared * 0.125);
                hold(inflated(declared, compressed));
                return false;
              });
            if (isStream && stream !== undefined)
              onDeclaredLengths(stream, (declared, compressed) => {
                if (admitted === undefined) return false;
                const bytes = inflated(declared, compressed);
                if (!hold(reserved + bytes)) return false;
                undecoded.push(bytes);
                return true;
              });
            nextMetadata(metadata);
          },
          onReceiveMessage: (message, nextMessage) => {
            if (refused) return;
            // Decoded: from now on the pack counts as what its messages hold, if that is more
            // (a compressed body was counted at the most it could inflate to: now it is known).
            if (byBytes && admitted !== undefined)
              count(Math.max(declaredBytes ?? reserved, heldBytes(message)));
            // A stream's batch decoded: bounded by the stream's credit from now on.
            if (isStream && admitted !== undefined) count(reserved - (undecoded.shift() ?? 0));
            nextMessage(message);
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
