import { createServer, type IncomingMessage, type ServerResponse, STATUS_CODES } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { Duplex } from "node:stream";
import { EVERY_NAME, type Security } from "../auth/index.js";
import { type Broker, NerveBusError, type ReadOnlyState, type ServerRole } from "../core/index.js";
import type { Logger, MemoryPartUse, Metrics } from "../telemetry/index.js";
import { getMessageJson, listMessagesJson } from "./browse-json.js";
import { BROWSER_PAGE, BROWSER_PAGE_CSP } from "./browser-page.js";
import type { Caller, CallGuard, Need } from "./call-guard.js";
import type { ConnectionLimits } from "./connection-limits.js";
import { HttpConnections } from "./http-connections.js";
import { crossSiteProblem, HostRule } from "./request-guard.js";
import { parseRequestPath } from "./request-target.js";
import { toHttpStatus } from "./status.js";
import { STATUS_PAGE, STATUS_PAGE_CSP } from "./status-page.js";

/** What the status page and the JSON API show about the broker itself. */
export interface BrokerInfo {
  readonly address: string;
  readonly store: string;
  readonly startedAt: number;
  openStreams(): number;
  healthy(): boolean;
  /** --memory-budget and what each of its parts holds now. */
  memory(): { readonly budgetBytes: number; readonly parts: readonly MemoryPartUse[] };
  /** The MySQL servers of the store and of the outboxes, and whether they refuse writes as read-only. */
  readOnlyState(): readonly ReadOnlyState[];
}

/** How the HTTP port guards itself. */
export interface HttpOptions {
  /** Host header names accepted besides the listen address (see HostRule). */
  readonly allowedHosts: readonly string[];
  readonly log: Logger;
  /** The same identities and policy as the gRPC port. */
  readonly guard: CallGuard;
  /** TLS material (and its reloads); plain HTTP when undefined or without TLS. */
  readonly security?: Security;
  /** Open TCP connections and how long one has to send its first request (see HttpConnections). */
  readonly connections: ConnectionLimits;
}

export interface RunningHttp {
  readonly address: string;
  close(): Promise<void>;
}

/**
 * Sent with every response. The page's own CSP replaces the default one, which allows nothing:
 * JSON and metrics never need to run or load anything.
 */
const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy":
    "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-frame-options": "DENY",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
};

/**
 * GET /api/status: the broker, and the topics and subscriptions `visible` lets the caller
 * administer.
 */
async function status(
  broker: Broker,
  info: BrokerInfo,
  visible: (topic: string, subscription?: string) => boolean,
  page: { offset: number; limit: number },
) {
  const topics = [];
  // One page of topics (by name): with thousands, a full answer took seconds and megabytes.
  // With several brokers, each shows the topics it owns (reading another's would claim it);
  // the cluster view says where the others are.
  const cluster = broker.store.cluster;
  const all = (await broker.listTopics()).filter(
    (t) => visible(t.name) && (cluster === undefined || cluster.owns(t.name)),
  );
  for (const t of all.slice(page.offset, page.offset + page.limit)) {
    const stats = await broker.stats(t.name);
    const { topic } = stats;
    const subscriptions = stats.subscriptions.filter((s) => visible(t.name, s.name));
    topics.push({
      ...topic,
      shards: t.shards,
      ephemeral: t.config.ephemeral,
      retentionMs: t.config.retentionMs,
      subscriptions: subscriptions.map((s) => ({
        name: s.name,
        floor: s.floor,
        backlog: s.backlog,
        inFlight: s.inFlight,
        waitingRedelivery: s.waitingRedelivery,
        redelivered: s.redelivered,
        deadLettered: s.deadLettered,
        skipped: s.skipped,
        dropped: s.dropped,
        deliveryRate: s.deliveryRate,
        ackRate: s.ackRate,
        oldestUnackedAgeMs: s.oldestUnackedAgeMs,
        paused: s.paused,
        consumers: s.consumers.map((c) => ({
          name: c.name,
          inFlight: c.inFlight,
          maxMessages: c.window.maxMessages,
          maxBytes: c.window.maxBytes,
          connectedAt: c.connectedAt,
        })),
      })),
    });
  }
  return {
    broker: {
      address: info.address,
      store: info.store,
      startedAt: info.startedAt,
      now: Date.now(),
      healthy: info.healthy(),
      openStreams: info.openStreams(),
      bufferedBytes: broker.bufferedBytes,
      tailCacheBytes: broker.tailCacheBytes,
      memory: process.memoryUsage(),
      memoryBudget: info.memory(),
      ownership: broker.store.ownership(),
      // Each file or database: whether it is out of disk space (publishes refused), since when.
      storeSpace: broker.store.spaceState?.() ?? [],
      // Each MySQL server, the store's and the outboxes' (`role`): whether it refuses writes as
      // read-only (a failover), since when.
      storeReadOnly: info.readOnlyState(),
      // Several brokers (--cluster): each one, the topics it owns and their lease ages.
      cluster: broker.store.cluster?.view(),
    },
    topicCount: all.length,
    offset: page.offset,
    topics,
  };
}

/** Topics per /api/status answer unless `?limit=` asks for fewer (or more, up to 1000). */
const STATUS_PAGE_TOPICS = 200;

/** `?offset=N&limit=M` of /api/status; out-of-range or malformed values fall back to the defaults. */
function statusPage(url: string): { offset: number; limit: number } {
  const q = new URLSearchParams(url.includes("?") ? url.slice(url.indexOf("?") + 1) : "");
  const int = (v: string | null, fallback: number, max: number) => {
    const n = v === null ? Number.NaN : Number(v);
    return Number.isSafeInteger(n) && n >= 0 && n <= max ? n : fallback;
  };
  return {
    offset: int(q.get("offset"), 0, Number.MAX_SAFE_INTEGER),
    limit: Math.max(1, int(q.get("limit"), STATUS_PAGE_TOPICS, 1000)),
  };
}

/**
 * /healthz's line for the read-only servers of `role`, since the earliest refusal ("" for
 * none): the store's writes are retried, as are the outbox relay's rounds.
 */
function readOnlyLine(role: ServerRole, states: readonly ReadOnlyState[]): string {
  const readOnly = states.filter((s) => s.role === role && s.readOnly);
  if (readOnly.length === 0) return "";
  const since = new Date(Math.min(...readOnly.map((s) => s.since))).toISOString();
  return role === "store"
    ? `store server read-only since ${since}: writes are retried\n`
    : `outbox server read-only since ${since}: the relay retries\n`;
}

function send(
  res: ServerResponse,
  code: number,
  body: string,
  type = "application/json; charset=utf-8",
): void {
  res.writeHead(code, { "content-type": type });
  res.end(body);
}

function sendError(res: ServerResponse, code: number, error: string): void {
  send(res, code, JSON.stringify({ error }));
}

/**
 * A complete response written straight to a socket, for requests the HTTP parser refused or
 * that never reach a request handler (CONNECT). The connection closes after it.
 */
function rawResponse(socket: Duplex, code: number, error: string): void {
  const body = JSON.stringify({ error });
  const head = [
    `HTTP/1.1 ${code} ${STATUS_CODES[code] ?? "Error"}`,
    "content-type: application/json; charset=utf-8",
    `content-length: ${Buffer.byteLength(body)}`,
    "connection: close",
    ...Object.entries(SECURITY_HEADERS).map(([k, v]) => `${k}: ${v}`),
  ];
  socket.end(`${head.join("\r\n")}\r\n\r\n${body}`);
}

/**
 * A route: the methods it answers, whether it changes state, what the caller needs when
 * authentication is on (undefined: open to all, as health checks and the page's static HTML
 * are), whether it is audited, and its handler.
 */
interface Route {
  readonly name: string;
  readonly methods: readonly string[];
  readonly mutates: boolean;
  readonly needs?: readonly Need[];
  readonly audited?: boolean;
  run(req: IncomingMessage, res: ServerResponse, caller: Caller): Promise<void> | void;
}

const READ = ["GET", "HEAD"];

/**
 * The broker's HTTP side, for people and scrapers: the status page (/), its JSON API
 * (/api/status; POST /api/topics/T/subscriptions/S/pause|resume), the message browser
 * (/messages; GET /api/topics/T/messages[/SEQ]), Prometheus metrics
 * (/metrics) and a plain health check (/healthz).
 *
 * No input ends the process: a bad path gets 400, an unknown one 404, a wrong method 405, a
 * foreign Host or a cross-site state change 403 (see request-guard.ts), a request the parser
 * refuses 400/408/413/431, and an exception in a handler 500 (logged). Every response carries
 * SECURITY_HEADERS. With TLS it speaks HTTPS only, following certificate reloads; with
 * authentication on, every route but the page's HTML and /healthz wants a principal (a verified
 * client certificate or `Authorization: Bearer`), 401 without one and 403 without the right,
 * through the same CallGuard as the gRPC port. What TCP connections may hold is bounded as on the
 * gRPC port (see HttpConnections). Throws NerveBusError when the address cannot be bound or an
 * allowed host is not a host name.
 */
export async function startHttpServer(
  listen: string,
  broker: Broker,
  metrics: Metrics,
  info: BrokerInfo,
  options: HttpOptions,
): Promise<RunningHttp> {
  const { log, guard } = options;
  const hosts = new HostRule(listen, options.allowedHosts);
  if (hosts.badNames.length > 0)
    throw new NerveBusError(
      "invalid_argument",
      `--http-allowed-hosts: ${hosts.badNames.map((n) => JSON.stringify(n)).join(", ")} is not a host name`,
    );

  function route(path: readonly string[]): Route | undefined {
    const p = path.join("/");
    if (p === "" || p === "index.html")
      return {
        name: "page",
        methods: READ,
        mutates: false,
        run: (_q, res) => {
          res.setHeader("content-security-policy", STATUS_PAGE_CSP);
          send(res, 200, STATUS_PAGE, "text/html; charset=utf-8");
        },
      };
    if (p === "messages")
      return {
        name: "messages-page",
        methods: READ,
        mutates: false,
        run: (_q, res) => {
          res.setHeader("content-security-policy", BROWSER_PAGE_CSP);
          send(res, 200, BROWSER_PAGE, "text/html; charset=utf-8");
        },
      };
    if (p === "healthz")
      return {
        name: "healthz",
        methods: READ,
        mutates: false,
        run: (_q, res) => {
          const ok = info.healthy();
          // A full disk stops publishes only: reads, deliveries and acks go on (consumers that
          // drain the backlog are what lets retention free space), so the status stays 200 and
          // a liveness probe does not restart a broker that could not start on a full disk. The
          // place is named on /api/status (this route is open to anyone).
          const full = (broker.store.spaceState?.() ?? []).filter((s) => s.full);
          const since = full.length === 0 ? 0 : Math.min(...full.map((s) => s.since));
          const space =
            full.length === 0
              ? ""
              : `store out of disk space since ${new Date(since).toISOString()}: publishes are refused\n`;
          // Writes are retried and the broker reconnects until the server takes them: packs
          // (or the outbox relay's rounds) wait; the lease decides health.
          const ro = (["store", "outbox"] as const)
            .map((role) => readOnlyLine(role, info.readOnlyState()))
            .join("");
          send(
            res,
            ok ? 200 : 503,
            `${ok ? "ok" : "not serving"}\n${space}${ro}`,
            "text/plain; charset=utf-8",
          );
        },
      };
    // Metrics name every topic and subscription.
    if (p === "metrics")
      return {
        name: "metrics",
        methods: READ,
        mutates: false,
        needs: [{ action: "admin", topic: EVERY_NAME, subscription: EVERY_NAME }],
        run: (req, res) => metrics.handle(req, res),
      };
    if (p === "api/status")
      return {
        name: "api/status",
        methods: READ,
        mutates: false,
        needs: [{ action: "admin" }],
        run: async (req, res, caller) => {
          const visible = (topic: string, subscription?: string) =>
            guard.may(caller, { action: "admin", topic, subscription });
          send(res, 200, JSON.stringify(await status(broker, info, visible, statusPage(req.url ?? ""))));
        },
      };
    const [api, topics, topic, subscriptions, sub, verb] = path;
    // The message browser's JSON: payloads are read, so admin on the topic; deliveries only of
    // the subscriptions the caller may administer.
    if (api === "api" && topics === "topics" && subscriptions === "messages" && path.length <= 5)
      return {
        name: path.length === 4 ? "api/messages" : "api/message",
        methods: READ,
        mutates: false,
        needs: [{ action: "admin", topic: topic! }],
        run: async (req, res, caller) => {
          const visible = (s: string) =>
            guard.may(caller, { action: "admin", topic: topic!, subscription: s });
          const url = req.url ?? "";
          const query = url.includes("?") ? url.slice(url.indexOf("?") + 1) : "";
          const body =
            sub === undefined
              ? await listMessagesJson(broker, topic!, new URLSearchParams(query), visible)
              : await getMessageJson(broker, topic!, sub, visible);
          send(res, 200, JSON.stringify(body));
        },
      };
    if (
      path.length === 6 &&
      api === "api" &&
      topics === "topics" &&
      subscriptions === "subscriptions" &&
      (verb === "pause" || verb === "resume")
    )
      return {
        name: `api/${verb}`,
        methods: ["POST"],
        mutates: true,
        needs: [{ action: "admin", topic: topic!, subscription: sub! }],
        audited: true,
        run: async (_q, res) => {
          const r = await broker.updateSubscription(topic!, sub!, { paused: verb === "pause" });
          send(res, 200, JSON.stringify({ topic, subscription: r.name, paused: r.config.paused }));
        },
      };
    return undefined;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
    const method = req.method ?? "";
    const foreign = hosts.problem(req.headers.host);
    if (foreign !== undefined) return sendError(res, 403, foreign);
    const path = parseRequestPath(req.url ?? "");
    if ("problem" in path) return sendError(res, 400, path.problem);
    const r = route(path.segments);
    if (r === undefined)
      return sendError(res, 404, `no route for ${method} ${(req.url ?? "").slice(0, 200)}`);
    if (!r.methods.includes(method)) {
      res.setHeader("allow", r.methods.join(", "));
      return sendError(res, 405, `${method} is not allowed here; use ${r.methods.join(" or ")}`);
    }
    let caller: Caller = { principal: undefined, peer: "" };
    if (r.needs !== undefined) {
      try {
        caller = guard.httpCaller(r.name, req);
        guard.require(r.name, caller, r.needs);
      } catch (err) {
        const e = err as NerveBusError;
        if (e.code === "unauthenticated") res.setHeader("www-authenticate", 'Bearer realm="nervebus"');
        return sendError(res, toHttpStatus(e.code), e.message);
      }
    }
    if (r.mutates) {
      const cross = crossSiteProblem(req.headers);
      if (cross !== undefined) return sendError(res, 403, cross);
    }
    try {
      await r.run(req, res, caller);
      if (r.audited) guard.audit(r.name, caller, r.needs?.[0]);
    } catch (err) {
      if (r.audited) guard.audit(r.name, caller, r.needs?.[0], String(err));
      // A domain error (bad name, unknown subscription, store down) is the client's answer;
      // anything else is a bug, answered 500 and logged by the caller.
      if (!(err instanceof NerveBusError) || err.code === "internal" || res.headersSent) throw err;
      sendError(res, toHttpStatus(err.code), err.message);
    }
  }

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    // An error event on the response (a write after its end) must never go unhandled.
    res.on("error", () => {});
    handle(req, res).catch((err: unknown) => {
      log("error", "http request failed", {
        method: req.method,
        url: req.url?.slice(0, 200),
        err: String(err),
      });
      if (res.headersSent) res.destroy();
      else sendError(res, 500, "internal error; see the broker log");
    });
  };
  const tls = options.security?.tls;
  // With TLS the port speaks HTTPS only. A client certificate is asked for but not required in
  // the handshake, so probes without one still reach /healthz; every other route needs a
  // verified certificate or a token when authentication is on.
  const { handshakeMs } = options.connections;
  // A kept-alive connection's later requests: node's own header timeout bounds them (the first
  // one is HttpConnections'), checked at least once a second instead of every 30 s.
  const checking = { connectionsCheckingInterval: Math.min(1000, handshakeMs) };
  const server =
    tls === undefined
      ? createServer(checking, onRequest)
      : createHttpsServer(
          {
            ...checking,
            cert: tls.cert,
            key: tls.key,
            ca: tls.ca,
            requestCert: tls.ca !== undefined,
            rejectUnauthorized: false,
          },
          onRequest,
        );
  // Past the first request's own deadline, so that one is answered and counted there.
  server.headersTimeout = handshakeMs + 1000;
  const connections = new HttpConnections(
    server,
    options.connections,
    (socket) =>
      rawResponse(
        socket,
        408,
        `no complete request headers within --handshake-timeout-ms (${handshakeMs} ms)`,
      ),
    tls !== undefined,
  );
  const stopWatching = options.security?.onTlsChange((m) =>
    (server as import("node:https").Server).setSecureContext({ cert: m.cert, key: m.key, ca: m.ca }),
  );
  // Requests the HTTP parser refuses (bad request line, bad header, header block over 16 KiB,
  // bad chunking, timeouts): answered like node's default, plus a JSON error and the headers.
  server.on("clientError", (err: NodeJS.ErrnoException & { reason?: string }, socket: Duplex) => {
    const written = (socket as Duplex & { bytesWritten?: number }).bytesWritten ?? 0;
    // A kept-alive connection's later request whose headers did not come in time (the first
    // request's deadline is HttpConnections', which has answered and ended the ones it cut):
    // after an earlier answer on the connection, it is cut without a 408.
    if (err.code === "ERR_HTTP_REQUEST_TIMEOUT" && socket.writable && written > 0)
      options.connections.refusals.count("handshake_timeout");
    if (err.code === "ECONNRESET" || !socket.writable || written > 0) {
      socket.destroy();
      return;
    }
    const code =
      err.code === "HPE_HEADER_OVERFLOW"
        ? 431
        : err.code === "HPE_CHUNK_EXTENSIONS_OVERFLOW"
          ? 413
          : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
            ? 408
            : 400;
    rawResponse(
      socket,
      code,
      code === 408
        ? // Node's own deadlines: the first request's headers are HttpConnections' (answered
          // there first), so this is a body slower than node's request timeout.
          `request not received in time: its body must come within ${server.requestTimeout / 1000} s`
        : `malformed HTTP request: ${err.code ?? "error"} (${err.reason ?? err.message})`,
    );
  });
  // CONNECT never reaches the request handler; without a listener node would drop the
  // connection without an answer.
  server.on("connect", (_req: IncomingMessage, socket: Duplex) => {
    socket.on("error", () => {});
    rawResponse(socket, 405, "CONNECT is not allowed here; this is not a proxy");
  });
  const host = listen.slice(0, listen.lastIndexOf(":"));
  const port = Number(listen.slice(listen.lastIndexOf(":") + 1));
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) =>
      reject(
        new NerveBusError(
          "unavailable",
          `--http-listen ${listen}: ${err.code === "EADDRINUSE" ? "address already in use (another broker? pass --http-listen HOST:PORT or off)" : err.message}`,
          { cause: err },
        ),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  // After start-up a server error (accept failing for want of file descriptors) is logged,
  // never thrown: the status port must not take the broker down.
  server.on("error", (err: Error) => log("warn", "http server error", { err: String(err) }));
  const bound = server.address() as { port: number };
  return {
    address: `${host}:${bound.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        stopWatching?.();
        server.close(() => resolve());
        connections.destroyAll();
      }),
  };
}
