import { lookup } from "node:dns/promises";
import { createServer, type Server, type Socket } from "node:net";
import { createServer as createTlsServer, type TLSSocket, type Server as TlsServer } from "node:tls";
import type { ConnectionInjector } from "@grpc/grpc-js";
import type { Security } from "../auth/index.js";
import { NerveBusError } from "../core/index.js";
import { type ConnectionLimits, cutLingering, endpoints } from "./connection-limits.js";

/** The client's HTTP/2 connection preface, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" (RFC 9113 §3.4). */
const PREFACE_BYTES = 24;

function listenError(listen: string, err: NodeJS.ErrnoException): NerveBusError {
  const why = err.code === "EADDRINUSE" ? "address already in use (another broker?)" : err.message;
  return new NerveBusError("unavailable", `--listen ${listen}: ${why}`, { cause: err });
}

/**
 * The gRPC port's listening sockets. The broker owns it, not grpc-js, so that no TCP connection
 * holds a file descriptor for nothing: at most `maxOpen` are open; one that has not finished
 * TLS and sent the HTTP/2 preface within `handshakeMs` is cut, as is one still open LINGER_MS
 * after the broker closed it gracefully (GOAWAY, then its FIN); each counted in `refusals`. The
 * connections are handed to grpc-js in plaintext: TLS is done here (with grpc-js's TLS the
 * socket HTTP/2 runs on is out of reach), so calls see the TLS socket and its client
 * certificate as before.
 */
export class GrpcListener {
  readonly #servers: Server[] = [];
  readonly #open = new Set<Socket>();
  readonly #tls: TlsServer | undefined;
  /** With TLS: each open connection's raw socket and, after its handshake, its TLS socket, by endpoints. */
  readonly #tlsConnections = new Map<string, { readonly raw: Socket; secured?: TLSSocket }>();
  readonly #stopWatching: (() => void) | undefined;

  constructor(
    private readonly injector: ConnectionInjector,
    private readonly limits: ConnectionLimits,
    security: Security | undefined,
  ) {
    const material = security?.tls;
    if (material === undefined) return;
    // A client certificate signed by --tls-client-ca is required and verified in the handshake
    // (ca is set only with it); reloads serve new connections, open ones keep theirs.
    const tls = createTlsServer({
      cert: material.cert,
      key: material.key,
      ca: material.ca,
      requestCert: material.ca !== undefined,
      rejectUnauthorized: material.ca !== undefined,
      ALPNProtocols: ["h2"],
    });
    tls.on("secureConnection", (s: TLSSocket) => this.#secure(s));
    // A failed handshake (a plaintext client, a missing or foreign certificate) ends its
    // connection; there is no one to tell.
    tls.on("tlsClientError", () => {});
    this.#stopWatching = security?.onTlsChange((m) =>
      tls.setSecureContext({ cert: m.cert, key: m.key, ca: m.ca }),
    );
    this.#tls = tls;
  }

  /**
   * Binds HOST:PORT (brackets around an IPv6 host allowed) on every address the host resolves
   * to, as grpc-js did (localhost: 127.0.0.1 and ::1), all on the port the first one got;
   * resolves with that port. Fails naming --listen when no address could be bound.
   */
  async listen(listen: string): Promise<number> {
    const at = listen.lastIndexOf(":");
    const host = listen.slice(0, at).replace(/^\[(.*)\]$/, "$1");
    let port = Number(listen.slice(at + 1));
    const addresses = await lookup(host, { all: true }).catch((err: Error) => {
      throw listenError(listen, err);
    });
    let firstError: Error | undefined;
    for (const { address } of addresses) {
      try {
        port = await this.#bind(address, port);
      } catch (err) {
        firstError ??= err as Error;
      }
    }
    if (this.#servers.length === 0)
      throw listenError(listen, firstError ?? new Error(`${host} resolves to no address`));
    return port;
  }

  async #bind(address: string, port: number): Promise<number> {
    const server = createServer((raw) => this.#accept(raw));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, address, () => resolve());
    });
    // Accept failing later (no descriptors left) must not take the broker down; it goes on
    // accepting once connections close.
    server.on("error", () => {});
    this.#servers.push(server);
    return (server.address() as { port: number }).port;
  }

  /** No new connections; the open ones stay until grpc-js closes them (or destroyAll). */
  stopAccepting(): void {
    for (const server of this.#servers) server.close();
    this.#stopWatching?.();
  }

  /** Cuts every connection still open. */
  destroyAll(): void {
    for (const s of this.#open) s.destroy();
  }

  #accept(raw: Socket): void {
    if (this.#open.size >= this.limits.maxOpen) {
      this.limits.refusals.count("limit");
      raw.destroy();
      return;
    }
    this.#open.add(raw);
    // A reset or a write to a closed peer ends the connection; HTTP/2 and TLS see it close.
    raw.on("error", () => {});
    const key = endpoints(raw);
    const deadline = setTimeout(() => this.#checkHandshake(raw, key), this.limits.handshakeMs);
    raw.once("close", () => {
      clearTimeout(deadline);
      this.#open.delete(raw);
      this.#tlsConnections.delete(key);
    });
    if (this.#tls === undefined) {
      this.#serve(raw, raw);
    } else {
      this.#tlsConnections.set(key, { raw });
      this.#tls.emit("connection", raw);
    }
  }

  #secure(s: TLSSocket): void {
    const conn = this.#tlsConnections.get(endpoints(s));
    // Cut already (by the deadline, or by the client).
    if (conn === undefined) {
      s.destroy();
      return;
    }
    conn.secured = s;
    this.#serve(s, conn.raw);
  }

  /** Hands `s` (the socket HTTP/2 runs on) to grpc-js; `raw` is cut if it lingers after its close. */
  #serve(s: Socket, raw: Socket): void {
    cutLingering(s, raw, this.limits.refusals);
    this.injector.injectConnection(s);
  }

  /** Cuts `raw` unless it finished TLS (with TLS) and sent the HTTP/2 preface by now. */
  #checkHandshake(raw: Socket, key: string): void {
    const s = this.#tls === undefined ? raw : this.#tlsConnections.get(key)?.secured;
    if (s !== undefined && s.bytesRead >= PREFACE_BYTES) return;
    this.limits.refusals.count("handshake_timeout");
    raw.destroy();
  }
}
