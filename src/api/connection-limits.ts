import type { Socket } from "node:net";
import type { Counter } from "@opentelemetry/api";
import { type LogFn, OUTAGE_REMIND_MS, OutageLog } from "../core/index.js";

/** What one TCP connection to a port may hold, and how many there may be. */
export interface ConnectionLimits {
  /** Open TCP connections, whatever they do; one more is closed as soon as it is accepted. */
  readonly maxOpen: number;
  /**
   * How long a new connection has to finish its TLS handshake (with TLS) and show it is a client:
   * the HTTP/2 preface on the gRPC port, a request's full headers on the HTTP port.
   */
  readonly handshakeMs: number;
  /** Where what is refused or cut is counted and logged. */
  readonly refusals: ConnectionRefusals;
}

/**
 * How long a connection the broker closed gracefully (its FIN) may stay open: a client that
 * honours the close is gone within a round trip; one that never closes its side would keep the
 * broker's socket (in FIN-WAIT-2) and its descriptor for ever.
 */
export const LINGER_MS = 5000;

/** One TCP connection, told apart by both its ends (a TLS socket and its raw socket share them). */
export function endpoints(s: Socket): string {
  return `${s.localAddress}:${s.localPort}-${s.remoteAddress}:${s.remotePort}`;
}

/**
 * Cuts `raw` if it is still open LINGER_MS after `s` (the socket the protocol runs on: `raw`
 * itself, or the TLS socket over it) was ended by the broker; counted as "linger".
 */
export function cutLingering(s: Socket, raw: Socket, refusals: ConnectionRefusals): void {
  s.once("finish", () => {
    const linger = setTimeout(() => {
      refusals.count("linger");
      raw.destroy();
    }, LINGER_MS);
    raw.once("close", () => clearTimeout(linger));
  });
}

/**
 * Why a port refused or cut a connection: over its cap of open connections, no TLS handshake
 * and first request (or HTTP/2 preface) within the handshake timeout, or still open after the
 * broker closed it.
 */
export type RefusalReason = "limit" | "handshake_timeout" | "linger";

const WHY: Readonly<Record<RefusalReason, string>> = {
  limit: "over the port's cap of open connections",
  handshake_timeout: "no TLS handshake and request within --handshake-timeout-ms",
  linger: `still open ${LINGER_MS} ms after the broker closed it`,
};

/**
 * The connections one port ("grpc", "http") refused or cut, for the operator: counted in
 * nervebus_connections_refused_total{port, reason}, and logged as an outage is (OutageLog): a
 * warning when they start, at most one reminder per 30 s while they go on (a flood is thousands
 * a second), a line when none came for 30 s.
 */
export class ConnectionRefusals {
  readonly #outage: OutageLog;
  #last = 0;
  #quietTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly port: "grpc" | "http",
    private readonly counter: Counter,
    log: LogFn,
  ) {
    this.#outage = new OutageLog(
      log,
      {
        started: "connections refused or cut",
        ongoing: "connections still refused or cut",
        ended: "no connection refused or cut for 30 s",
      },
      { port },
    );
  }

  count(reason: RefusalReason): void {
    this.counter.add(1, { port: this.port, reason });
    this.#last = Date.now();
    this.#outage.failed(WHY[reason]);
    this.#quietTimer ??= setTimeout(() => this.#checkQuiet(), OUTAGE_REMIND_MS).unref();
  }

  #checkQuiet(): void {
    this.#quietTimer = undefined;
    const quietFor = Date.now() - this.#last;
    if (quietFor >= OUTAGE_REMIND_MS) this.#outage.recovered();
    else this.#quietTimer = setTimeout(() => this.#checkQuiet(), OUTAGE_REMIND_MS - quietFor).unref();
  }
}

/**
 * File descriptors the broker needs besides its client connections: the store's connections and
 * files (SQLite's database, log and lock), peers of a cluster, TLS files being reloaded.
 */
export const FD_RESERVE = 256;

/**
 * The process's open-file limit from the text of /proc/self/limits (Node raises the soft limit
 * to the hard one at start); undefined when it cannot be read or says "unlimited".
 */
export function openFileLimit(limitsText: string): number | undefined {
  const m = /^Max open files\s+(\d+)/m.exec(limitsText);
  return m === null ? undefined : Number(m[1]);
}

/**
 * What is wrong when both ports' caps and FD_RESERVE do not fit in `limit` descriptors: past
 * it, accepting a connection fails (EMFILE) for every port alike and the store cannot open a
 * connection or a file, so the caps would not keep the broker reachable. Undefined when they fit.
 */
export function fileLimitProblem(
  limit: number | undefined,
  grpcCap: number,
  httpCap: number,
): string | undefined {
  if (limit === undefined || grpcCap + httpCap + FD_RESERVE <= limit) return undefined;
  return (
    `--max-open-connections (${grpcCap}) plus --http-max-connections (${httpCap}) plus ${FD_RESERVE} for the store ` +
    `exceed the process's open-file limit (${limit}): a flood of connections would leave the store no file ` +
    `descriptor. Raise the limit (ulimit -n, systemd's LimitNOFILE) or lower --max-open-connections to ` +
    `${Math.max(1, limit - httpCap - FD_RESERVE)} at most`
  );
}
