import { readFileSync } from "node:fs";
import { format } from "node:util";
import * as grpc from "@grpc/grpc-js";
import type { SpanProcessor } from "@opentelemetry/sdk-trace-base";
import {
  CallGuard,
  ClusterRelayTarget,
  ConnectionRefusals,
  DeadLetterSender,
  fileLimitProblem,
  listensOnLoopbackOnly,
  openFileLimit,
  PeerAuth,
  PeerChannels,
  PrincipalLimits,
  ProtobufSchemaValidator,
  type RunningHttp,
  type RunningServer,
  readPeerCa,
  startHttpServer,
  startServer,
} from "./api/index.js";
import { type ReloadReport, Security } from "./auth/index.js";
import type { Config } from "./config/index.js";
import { Broker, OutboxRelay, type ReadOnlyState, readOnlyPerServer, type Store } from "./core/index.js";
import { MysqlOutboxSource, openStore } from "./store/index.js";
import { createTelemetry, type Logger, type MemoryPartUse, type Telemetry } from "./telemetry/index.js";

/**
 * The least time a stop gives the store for its last writes (ms), whatever --shutdown-grace-ms
 * says: a server that answers takes them in milliseconds, and a grace of 0 should not drop the
 * subscription state it would have taken.
 */
const STORE_CLOSE_MIN_MS = 1000;

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
   * Resolves if another broker takes the store over. By then this one has stopped serving:
   * health is NOT_SERVING, every call and every pack waiting for its confirm got UNAVAILABLE,
   * Receive streams were ended. `nervebus serve` exits on it so a supervisor restarts it as a
   * broker that waits for the lease.
   */
  readonly fenced: Promise<Error>;
  /** One relay per `--outbox` database. */
  readonly relays: readonly OutboxRelay[];
  /**
   * Re-reads the TLS, token, JWKS and policy files now (SIGHUP), logging what changed and what
   * was refused; a refused file leaves the one in use in place. Open streams keep going; new
   * calls and connections get what was loaded.
   */
  reloadSecurity(): ReloadReport;
  /**
   * Hands every topic this broker owns to the other brokers of its cluster and takes no new
   * ones (it goes on forwarding calls); resolves once all are handed over. A no-op without
   * `--cluster`.
   */
  drain(): Promise<void>;
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
  /**
   * An open store to use instead of opening `config.store` (which is then ignored); the broker
   * closes it on stop. Only the benchmark's no-store ceiling passes one: no CLI flag or setting
   * reaches it.
   */
  readonly store?: Store;
}

/**
 * A loud warning at every start for each port other machines can reach without TLS or
 * without authentication, saying what anyone who connects can do.
 */
function warnIfExposed(
  grpcAddress: string,
  httpAddress: string | undefined,
  security: Security,
  log: Logger,
): void {
  const { tlsEnabled, authEnabled } = security;
  if (tlsEnabled && authEnabled) return;
  const ports: [string, string | undefined, string][] = [
    ["gRPC", grpcAddress, "publish, read, ack, purge and delete topics"],
    ["HTTP", httpAddress, "read topic and subscription names and figures and pause or resume subscriptions"],
  ];
  for (const [port, address, can] of ports) {
    if (address === undefined || listensOnLoopbackOnly(address)) continue;
    const problem = !authEnabled
      ? `WITHOUT ${tlsEnabled ? "" : "TLS OR "}AUTHENTICATION: anyone who can connect can ${can}`
      : "WITHOUT TLS: anyone on the network path can read the messages and the bearer tokens, and use the tokens";
    log(
      "warn",
      `${port} PORT IS OPEN TO THE NETWORK ${problem}; see "Securing NerveBus" in the README (--tls-cert, --auth-tokens, --require-auth)`,
      { address },
    );
  }
}

/** The start-up line saying how callers are checked. */
function describeSecurity(config: Config, security: Security): Record<string, unknown> {
  const ways = [
    config.authTokens === "" ? "" : "tokens",
    config.authJwks === "" ? "" : "jwt",
    config.tlsClientCa === "" ? "" : "client-certificate",
  ].filter((w) => w !== "");
  return {
    tls: security.tlsEnabled,
    mtls: security.mutualTls,
    certificateExpires: security.tls ? new Date(security.tls.notAfter).toISOString() : undefined,
    authentication: ways.length === 0 ? "off" : ways.join(","),
    policy: !security.authEnabled
      ? "none"
      : config.authPolicy === ""
        ? "none: every authenticated principal may do everything"
        : config.authPolicy,
  };
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
  // Before the store: a bad certificate or policy must not cost a MySQL lease.
  const security = Security.load(config);
  const peerCa =
    config.cluster && security.tlsEnabled ? readPeerCa(config.clusterTlsCa, config.tlsClientCa) : undefined;
  // Checked before the store too; connected once the broker serves. With --cluster every broker
  // runs a relay per outbox and one at a time holds it, by a lease (see OutboxLease).
  const outboxUrls = config.outbox
    .split(",")
    .map((u) => u.trim())
    .filter((u) => u !== "");
  for (const url of outboxUrls) new MysqlOutboxSource(url, log);
  let server: RunningServer | undefined;
  let broker: Broker | undefined;
  let storeHealthy = true;
  let draining = false;
  let reportFenced: (err: Error) => void = () => undefined;
  let relays: OutboxRelay[] = [];
  const fenced = new Promise<Error>((resolve) => {
    reportFenced = resolve;
  });
  const given = options.store;
  const open = given === undefined ? openStore : async () => given;
  // Aborted when a stop's time is over: every MySQL connection (store, leases, outboxes) is
  // cut, so a server that answers nothing cannot hold the stop (see ServerPool).
  const cutoff = new AbortController();
  const store = await open(config.store, {
    mysqlPoolSize: config.mysqlPoolSize,
    mysqlStallTimeoutMs: config.mysqlStallTimeoutMs,
    cutoff: cutoff.signal,
    mysqlAllowUnsafeDurability: config.mysqlAllowUnsafeDurability,
    sqliteWriterThread: config.sqliteWriterThread,
    leaseTtlMs: config.leaseTtlMs,
    leaseRenewMs: config.leaseRenewMs,
    leaseWaitMs: config.leaseWaitMs,
    cluster: config.cluster,
    onOwnershipLost: (err) => {
      storeHealthy = false;
      broker?.fence(err);
      for (const relay of relays) void relay.stop();
      server?.setServing(false);
      server?.sessions.closeAll(err.message);
      reportFenced(err);
    },
    log,
  });
  // The parts of --memory-budget, their shares and what they hold now (status page, metrics).
  const memoryUse = (): MemoryPartUse[] => [
    { part: "requests", limitBytes: config.packBytesInProgress, usedBytes: server?.requestBytes() ?? 0 },
    { part: "write_buffer", limitBytes: config.writeBufferBytes, usedBytes: broker?.bufferedBytes ?? 0 },
    { part: "tail_caches", limitBytes: config.tailCacheTotalBytes, usedBytes: broker?.tailCacheBytes ?? 0 },
    { part: "read_ahead", limitBytes: config.readAheadBytes, usedBytes: broker?.readAheadBytes ?? 0 },
    { part: "leases", limitBytes: config.leaseBytes, usedBytes: broker?.leaseBytes ?? 0 },
    {
      part: "stream_buffers",
      limitBytes: config.streamBufferBytes,
      usedBytes: server?.streamBuffers.usedBytes ?? 0,
    },
  ];
  // The store's MySQL servers, then the outboxes' (the applications' databases), each once.
  const readOnlyState = (): ReadOnlyState[] => [
    ...(store.readOnlyState?.() ?? []),
    ...readOnlyPerServer(relays.flatMap((r) => r.source.readOnlyState?.() ?? [])),
  ];
  const telemetry = createTelemetry({
    env: options.env ?? process.env,
    storeKind: store.capabilities.kind,
    ...(options.spanProcessor ? { spanProcessor: options.spanProcessor } : {}),
    gauges: {
      subscriptions: () => broker?.subscriptionGauges() ?? [],
      openStreams: () => server?.sessions.size ?? 0,
      bufferedBytes: () => broker?.bufferedBytes ?? 0,
      memory: () => memoryUse(),
      ownership: () => store.ownership(),
      spaceState: () => store.spaceState?.() ?? [],
      readOnlyState,
      cluster: () => store.cluster?.view(),
      outboxes: () =>
        relays.map((r) => ({ outbox: r.source.name, relayed: r.relayed, errors: r.errors, lagMs: r.lagMs })),
    },
  });
  const cluster = store.cluster;
  // This broker's; with --cluster also published with its address (brokers check packs for
  // its topics against them, and split what they send it by them).
  const publishLimits = {
    maxMessageBytes: config.maxMessageBytes,
    maxPackMessages: config.maxPackMessages,
    maxPackBytes: config.maxPackBytes,
  };
  // A full pack plus protobuf framing per message.
  const maxMessageBytes = config.maxPackBytes + config.maxPackMessages * 64 + (1 << 20);
  const peers =
    cluster === undefined
      ? undefined
      : { auth: new PeerAuth(cluster, log), channels: new PeerChannels(security, peerCa, maxMessageBytes) };
  const guard = new CallGuard(
    security,
    log,
    new PrincipalLimits({
      connections: config.maxConnectionsPerPrincipal,
      streams: config.maxStreamsPerPrincipal,
    }),
    peers?.auth,
  );
  const deadLetterSender =
    peers === undefined || cluster === undefined
      ? undefined
      : new DeadLetterSender(peers.auth, peers.channels, cluster, publishLimits);
  broker = new Broker(store, {
    ...(deadLetterSender === undefined
      ? {}
      : { forwardDeadLetters: (to, topic, messages) => deadLetterSender.send(to, topic, messages) }),
    defaultShards: config.shards,
    autoCreate: config.autoCreate,
    ...publishLimits,
    writeBufferBytes: config.writeBufferBytes,
    tailCacheBytes: config.tailCacheBytes,
    tailCacheTotalBytes: config.tailCacheTotalBytes,
    readAheadBytes: config.readAheadBytes,
    leaseBytes: config.leaseBytes,
    catalog: {
      maxTopics: config.maxTopics,
      maxSubscriptionsPerTopic: config.maxSubscriptionsPerTopic,
      maxTopicsPerPrincipal: config.maxTopicsPerPrincipal,
      maxSubscriptionsPerPrincipal: config.maxSubscriptionsPerPrincipal,
    },
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
    schemaValidator: new ProtobufSchemaValidator(),
    log,
  });
  const b = broker;
  let http: RunningHttp | undefined;
  try {
    server = await startServer(b, {
      listen: config.listen,
      maxMessageBytes,
      heartbeatMs: config.heartbeatMs,
      keepaliveMs: config.keepaliveMs,
      maxConnectionIdleMs: config.maxConnectionIdleMs,
      connections: {
        maxOpen: config.maxOpenConnections,
        handshakeMs: config.handshakeTimeoutMs,
        refusals: new ConnectionRefusals("grpc", telemetry.metrics.connectionsRefused, log),
      },
      admission: {
        perConnection: config.maxPacksPerConnection,
        total: config.maxPacksInProgress,
        connections: config.maxConnections,
        bytes: config.packBytesInProgress,
        packBytes: config.maxPackBytes,
        requestBytes: maxMessageBytes,
      },
      publishQuota: {
        messagesPerSecond: config.publishQuotaMessages,
        bytesPerSecond: config.publishQuotaBytes,
        packsInProgress: config.maxPacksPerPrincipal,
      },
      maxConcurrentStreams: config.maxConcurrentStreams,
      streamBufferBytes: config.streamBufferBytes,
      telemetry,
      guard,
      security,
      ...(cluster === undefined ? {} : { cluster, peers }),
    });
    const s = server;
    if (config.httpListen !== "off") {
      http = await startHttpServer(
        config.httpListen,
        b,
        telemetry.metrics,
        {
          address: s.address,
          store: store.capabilities.kind,
          startedAt: Date.now(),
          openStreams: () => s.sessions.size,
          healthy: () => storeHealthy && !draining,
          memory: () => ({ budgetBytes: config.memoryBudget, parts: memoryUse() }),
          readOnlyState,
        },
        {
          allowedHosts: config.httpAllowedHosts
            .split(",")
            .map((h) => h.trim())
            .filter((h) => h !== ""),
          log,
          guard,
          security,
          connections: {
            maxOpen: config.httpMaxConnections,
            handshakeMs: config.handshakeTimeoutMs,
            refusals: new ConnectionRefusals("http", telemetry.metrics.connectionsRefused, log),
          },
        },
      );
    }
  } catch (err) {
    await server?.shutdown(0);
    const cutting = setTimeout(() => cutoff.abort(), STORE_CLOSE_MIN_MS);
    await b.close(STORE_CLOSE_MIN_MS);
    clearTimeout(cutting);
    peers?.channels.close();
    await telemetry.shutdown();
    throw err;
  }
  const grpcServer = server;
  if (store.cluster !== undefined) {
    store.cluster.setHooks({
      adopt: (topic) => b.adoptTopic(topic),
      lose: (topic, err) => b.loseTopic(topic, err),
      release: (topic) => b.releaseTopic(topic),
    });
    // From here on other brokers forward to this one and it takes topics.
    await store.cluster.advertise(
      config.advertiseAddress === "" ? grpcServer.address : config.advertiseAddress,
      publishLimits,
    );
  }
  const relayTarget =
    store.cluster === undefined || deadLetterSender === undefined
      ? b
      : new ClusterRelayTarget(b, store.cluster, deadLetterSender);
  const leaseOf = store.cluster;
  relays = outboxUrls.map(
    (url) =>
      new OutboxRelay(
        new MysqlOutboxSource(
          url,
          log,
          leaseOf === undefined
            ? undefined
            : { owner: leaseOf.self, ttlMs: config.leaseTtlMs, renewMs: config.leaseRenewMs },
          config.mysqlStallTimeoutMs,
          cutoff.signal,
        ),
        relayTarget,
        {
          pollMs: config.outboxPollMs,
          gapWaitMs: config.outboxGapWaitMs,
          batchRows: config.outboxBatchRows,
          maxPackMessages: config.maxPackMessages,
          maxPackBytes: config.maxPackBytes,
          log,
        },
      ),
  );
  for (const relay of relays) {
    relay.start();
    log("info", "outbox relay started", { outbox: relay.source.name });
  }
  // The store's health drives the gRPC health status: load balancers stop sending work to a
  // broker whose database is gone.
  const healthTimer = setInterval(() => {
    const timeout = new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error("ping timed out")), 2000).unref(),
    );
    Promise.race([store.ping(), timeout]).then(
      () => {
        if (b.fenced) return;
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
  warnIfExposed(grpcServer.address, http?.address, security, log);
  log("info", "security", describeSecurity(config, security));
  const reloadSecurity = (force: boolean): ReloadReport => {
    const report = security.reload(force);
    // A SIGHUP (force) always gets an answer in the log, even when nothing changed.
    if (report.changed.length > 0 || force)
      log("info", "security files reloaded", { changed: report.changed });
    for (const error of report.errors) log("error", "security file refused; the one in use stays", { error });
    return report;
  };
  // cert-manager and similar tools replace files without signalling anyone: look now and then.
  const reloadTimer =
    config.securityReloadMs > 0
      ? setInterval(() => reloadSecurity(false), config.securityReloadMs)
      : undefined;
  reloadTimer?.unref();
  const fdProblem = fileLimitProblem(
    openFileLimit(readFileOr("/proc/self/limits")),
    config.maxOpenConnections,
    config.httpListen === "off" ? 0 : config.httpMaxConnections,
  );
  if (fdProblem !== undefined) log("warn", fdProblem);
  log("info", "nervebus serving", {
    address: grpcServer.address,
    http: http?.address ?? "off",
    store:
      options.store === undefined
        ? config.store.replace(/\/\/[^@/]*@/g, "//***@")
        : `given by the caller (${store.capabilities.kind})`,
    tracing: telemetry.tracer !== undefined,
  });
  let stopping: Promise<void> | undefined;
  return {
    broker: b,
    server: grpcServer,
    telemetry,
    address: grpcServer.address,
    httpAddress: http?.address,
    fenced,
    relays,
    reloadSecurity: () => reloadSecurity(true),
    drain: async () => {
      await store.cluster?.drain();
    },
    stop() {
      stopping ??= (async () => {
        draining = true;
        clearInterval(healthTimer);
        clearInterval(reloadTimer);
        // One deadline for all of it: calls in progress get the grace, the store's last writes
        // what is left of it; then whatever still waits on a MySQL server is cut.
        const closeBy = performance.now() + Math.max(config.shutdownGraceMs, STORE_CLOSE_MIN_MS);
        const cutting = setTimeout(() => cutoff.abort(), closeBy - performance.now());
        const relaysStopped = Promise.all(relays.map((r) => r.stop()));
        await grpcServer.shutdown(config.shutdownGraceMs);
        await relaysStopped;
        await b.close(Math.max(0, closeBy - performance.now()));
        clearTimeout(cutting);
        peers?.channels.close();
        await http?.close();
        await telemetry.shutdown();
        log("info", "nervebus stopped");
      })();
      return stopping;
    },
  };
}

/** A file's text, or "" where it cannot be read (/proc elsewhere than on Linux). */
function readFileOr(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}
