import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { type Broker, NerveBusError } from "../core/index.js";
import type { Metrics } from "../telemetry/index.js";
import { toGrpcStatus } from "./status.js";
import { STATUS_PAGE } from "./status-page.js";

/** What the status page and the JSON API show about the broker itself. */
export interface BrokerInfo {
  readonly address: string;
  readonly store: string;
  readonly startedAt: number;
  openStreams(): number;
  healthy(): boolean;
}

export interface RunningHttp {
  readonly address: string;
  close(): Promise<void>;
}

const HTTP_STATUS: Record<number, number> = { 3: 400, 5: 404, 6: 409, 9: 412, 8: 429, 14: 503 };

/** GET /api/status: the broker, its topics and their subscriptions. */
async function status(broker: Broker, info: BrokerInfo) {
  const topics = [];
  for (const t of await broker.listTopics()) {
    const { topic, subscriptions } = await broker.stats(t.name);
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
      memory: process.memoryUsage(),
    },
    topics,
  };
}

function send(
  res: ServerResponse,
  code: number,
  body: string,
  type = "application/json; charset=utf-8",
): void {
  res.writeHead(code, { "content-type": type, "cache-control": "no-store" });
  res.end(body);
}

/**
 * The broker's HTTP side, for people and scrapers: the status page (/), its JSON API
 * (/api/status; POST /api/topics/T/subscriptions/S/pause|resume), Prometheus metrics
 * (/metrics) and a plain health check (/healthz).
 */
export async function startHttpServer(
  listen: string,
  broker: Broker,
  metrics: Metrics,
  info: BrokerInfo,
): Promise<RunningHttp> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const action = /^\/api\/topics\/([^/]+)\/subscriptions\/([^/]+)\/(pause|resume)$/.exec(url.pathname);
    if (req.method === "GET" && url.pathname === "/metrics") {
      metrics.handle(req, res);
    } else if (req.method === "GET" && url.pathname === "/healthz") {
      const ok = info.healthy();
      send(res, ok ? 200 : 503, ok ? "ok\n" : "not serving\n", "text/plain");
    } else if (req.method === "GET" && url.pathname === "/api/status") {
      status(broker, info).then(
        (body) => send(res, 200, JSON.stringify(body)),
        (err: unknown) => send(res, 500, JSON.stringify({ error: toGrpcStatus(err).details })),
      );
    } else if (req.method === "POST" && action !== null) {
      const [, topic, sub, verb] = action;
      broker
        .updateSubscription(decodeURIComponent(topic!), decodeURIComponent(sub!), {
          paused: verb === "pause",
        })
        .then(
          (r) =>
            send(
              res,
              200,
              JSON.stringify({
                topic: decodeURIComponent(topic!),
                subscription: r.name,
                paused: r.config.paused,
              }),
            ),
          (err: unknown) => {
            const s = toGrpcStatus(err);
            send(res, HTTP_STATUS[s.code] ?? 500, JSON.stringify({ error: s.details }));
          },
        );
    } else if (req.method === "GET" && (url.pathname === "/" || url.pathname === "/index.html")) {
      send(res, 200, STATUS_PAGE, "text/html; charset=utf-8");
    } else {
      send(res, 404, JSON.stringify({ error: `no route for ${req.method} ${url.pathname}` }));
    }
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
  const bound = server.address() as { port: number };
  return {
    address: `${host}:${bound.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
