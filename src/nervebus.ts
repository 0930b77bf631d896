import { format } from "node:util";
import * as grpc from "@grpc/grpc-js";
import type { SpanProcessor } from "@opentelemetry/sdk-trace-base";
import { type RunningHttp, type RunningServer, startHttpServer, startServer } from "./api/index.js";
import type { Config } from "./config/index.js";
import { Broker } from "./core/index.js";
import { openStore } from "./store/index.js";
import { createTelemetry, type Logger, type Telemetry } from "./telemetry/index.js";

/** A running broker: store, core, gRPC and HTTP front ends, telemetry. */
export interface NerveBus {
  readonly broker: Broker;
  readonly server: RunningServer;
  readonly telemetry: Telemetry;
  /** HOST:PORT the gRPC server is bound to. */
  readonly address: string;
  /** HOST:PORT of the status page and /metrics, or undefined when off. */
  readonly httpAddress: string | undefined;
  /**
   * Graceful stop: health turns NOT_SERVING, new calls are refused with UNAVAILABLE, Receive
   * streams end with UNAVAILABLE, SendPacks in progress finish and every answer is written before
   * its connection closes (UNAVAILABLE for what is still unanswered after the grace), writes and
   * subscription state are flushed, the store is closed.
   */
  stop(): Promise<void>;
}

/** Extra wiring for tests: a span processor to collect spans in memory. */
export interface StartOptions {
  readonly spanProcessor?: SpanProcessor;
  readonly env?: NodeJS.ProcessEnv;
}

/** Opens the store and starts serving. Throws NerveBusError on bad config or an unusable store. */
export async function startNerveBus(
  config: Config,
  log: Logger,
  options: StartOptions = {},
): Promise<NerveBus> {
  // grpc-js logs through console by default; its lines go into the broker's JSON log instead.
  grpc.setLogger({
    error: (...args: unknown[]) => log("warn", "grpc", { detail: format(...args) }),
    info: (...args: unknown[]) => log("debug", "grpc", { detail: format(...args) }),
    debug: (...args: unknown[]) => log("debug", "grpc", { detail: format(...args) }),
  } as unknown as Partial<Console>);
  const store = await openStore(config.store, {
    mysqlPoolSize: config.mysqlPoolSize,
    mysqlAllowUnsafeDurability: config.mysqlAllowUnsafeDurability,
    log,
  });
  let server: RunningServer | undefined;
  let broker: Broker | undefined;
  let storeHealthy = true;
  let draining = false;
  const telemetry = createTelemetry({
    env: options.env ?? process.env,
    storeKind: store.capabilities.kind,
    ...(options.spanProcessor ? { spanProcessor: options.spanProcessor } : {}),
    gauges: {
      subscriptions: () => broker?.subscriptionGauges() ?? [],
      openStreams: () => server?.sessions.size ?? 0,
      bufferedBytes: () => broker?.bufferedBytes ?? 0,
    },
  });
  broker = new Broker(store, {
    defaultShards: config.shards,
    autoCreate: config.autoCreate,
    maxMessageBytes: config.maxMessageBytes,
    maxPackMessages: config.maxPackMessages,
    maxPackBytes: config.maxPackBytes,
    writeBufferBytes: config.writeBufferBytes,
    tailCacheBytes: config.tailCacheBytes,
    confirmTimeoutMs: config.confirmTimeoutMs,
    statePersistIntervalMs: config.statePersistIntervalMs,
    retentionIntervalMs: config.retentionIntervalMs,
    topicDefaults: {
      retentionMs: config.retentionMs,
      retentionBytes: config.retentionBytes,
      dedupWindowMs: config.dedupWindowMs,
      ephemeral: false,
    },
    subscriptionDefaults: {
      ackDeadlineMs: config.ackDeadlineMs,
      minBackoffMs: config.minBackoffMs,
      maxBackoffMs: config.maxBackoffMs,
      maxDeliveryAttempts: config.maxDeliveryAttempts,
      deadLetterTopic: "",
      ordering: false,
      paused: false,
    },
    observer: telemetry.observer,
    log,
  });
  const b = broker;
  let http: RunningHttp | undefined;
  try {
    server = await startServer(b, {
      listen: config.listen,
      // A full pack plus protobuf framing per message.
      maxMessageBytes: config.maxPackBytes + config.maxPackMessages * 64 + (1 << 20),
      heartbeatMs: config.heartbeatMs,
      keepaliveMs: config.keepaliveMs,
      maxConcurrentStreams: config.maxConcurrentStreams,
      telemetry,
    });
    const s = server;
    if (config.httpListen !== "off") {
      http = await startHttpServer(config.httpListen, b, telemetry.metrics, {
        address: s.address,
        store: store.capabilities.kind,
        startedAt: Date.now(),
        openStreams: () => s.sessions.size,
        healthy: () => storeHealthy && !draining,
      });
    }
  } catch (err) {
    await server?.shutdown(0);
    await b.close(1000);
    await telemetry.shutdown();
    throw err;
  }
  const grpcServer = server;
  // The store's health drives the gRPC health status: load balancers stop sending work to a
  // broker whose database is gone.
  const healthTimer = setInterval(() => {
    const timeout = new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error("ping timed out")), 2000).unref(),
    );
    Promise.race([store.ping(), timeout]).then(
      () => {
        if (!storeHealthy) log("info", "store reachable again");
        storeHealthy = true;
        if (!draining) grpcServer.setServing(true);
      },
      (err: unknown) => {
        if (storeHealthy) log("warn", "store unreachable; health is NOT_SERVING", { err: String(err) });
        storeHealthy = false;
        grpcServer.setServing(false);
      },
    );
  }, config.healthIntervalMs);
  healthTimer.unref();
  log("info", "nervebus serving", {
    address: grpcServer.address,
    http: http?.address ?? "off",
    store: config.store.replace(/\/\/[^@/]*@/, "//***@"),
    tracing: telemetry.tracer !== undefined,
  });
  let stopping: Promise<void> | undefined;
  return {
    broker: b,
    server: grpcServer,
    telemetry,
    address: grpcServer.address,
    httpAddress: http?.address,
    stop() {
      stopping ??= (async () => {
        draining = true;
        clearInterval(healthTimer);
        await grpcServer.shutdown(config.shutdownGraceMs);
        await b.close(config.shutdownGraceMs);
        await http?.close();
        await telemetry.shutdown();
        log("info", "nervebus stopped");
      })();
      return stopping;
    },
  };
}
