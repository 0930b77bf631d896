import type { Server as HttpServer, IncomingMessage } from "node:http";
import type { Server as HttpsServer } from "node:https";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { type ConnectionLimits, cutLingering, endpoints } from "./connection-limits.js";

/**
 * The TCP connections of the HTTP port, bounded as the gRPC port's are (GrpcListener): at most
 * `maxOpen` open (node closes one more as soon as it is accepted); one that has not finished TLS
 * (with TLS) and sent a request's full headers within `handshakeMs` is cut, after a 408 if it
 * had sent part of a request; one still open LINGER_MS after the broker ended it (an answer with
 * `connection: close`, a clientError's or CONNECT's answer) is cut. Node's own bounds came too
 * late for a flood: headers within 60 s, checked every 30 s; a TLS handshake within 120 s; and a
 * connection the broker ended stayed open until the client closed its side.
 */
export class HttpConnections {
  readonly #open = new Set<Socket>();
  /** Connections that have not sent a full request yet, by endpoints; with TLS, their TLS socket once secured. */
  readonly #waiting = new Map<string, { readonly raw: Socket; secured?: TLSSocket }>();

  constructor(
    server: HttpServer | HttpsServer,
    private readonly limits: ConnectionLimits,
    /** Answers 408 on the socket the HTTP parser reads (the connection closes after it). */
    private readonly requestTimeout: (s: Socket) => void,
    private readonly tls: boolean,
  ) {
    server.maxConnections = limits.maxOpen;
    server.on("drop", () => limits.refusals.count("limit"));
    server.on("connection", (raw: Socket) => this.#accept(raw));
    if (tls) server.on("secureConnection", (s: TLSSocket) => this.#secure(s));
    const served = (req: IncomingMessage) => this.#waiting.delete(endpoints(req.socket));
    server.on("request", served);
    server.on("connect", served);
  }

  /** Cuts every connection still open. */
  destroyAll(): void {
    for (const raw of this.#open) raw.destroy();
  }

  #accept(raw: Socket): void {
    this.#open.add(raw);
    const key = endpoints(raw);
    this.#waiting.set(key, { raw });
    const deadline = setTimeout(() => this.#checkRequest(key), this.limits.handshakeMs);
    raw.once("close", () => {
      clearTimeout(deadline);
      this.#open.delete(raw);
      this.#waiting.delete(key);
    });
    // With TLS the broker ends the TLS socket; see #secure.
    if (!this.tls) cutLingering(raw, raw, this.limits.refusals);
  }

  #secure(s: TLSSocket): void {
    const conn = this.#waiting.get(endpoints(s));
    if (conn === undefined) return;
    conn.secured = s;
    cutLingering(s, conn.raw, this.limits.refusals);
  }

  /** Cuts the connection of `key` unless its first request's headers came by now. */
  #checkRequest(key: string): void {
    const conn = this.#waiting.get(key);
    if (conn === undefined) return;
    this.#waiting.delete(key);
    // The socket the HTTP parser reads: none yet while TLS is not done.
    const s = this.tls ? conn.secured : conn.raw;
    // Ended already (a clientError's answer): the linger bound closes it.
    if (s?.writableEnded) return;
    this.limits.refusals.count("handshake_timeout");
    if (s !== undefined && s.bytesRead > 0 && s.writable) this.requestTimeout(s);
    else conn.raw.destroy();
  }
}
