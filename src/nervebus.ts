import { type RunningServer, startServer } from "./api/index.js";
import type { Config } from "./config/index.js";
import { Broker } from "./core/index.js";
import { openStore } from "./store/index.js";
import type { Logger } from "./telemetry/index.js";

/** A running broker: store, core and gRPC front end. */
export interface NerveBus {
  readonly broker: Broker;
  readonly server: RunningServer;
  /** HOST:PORT the gRPC server is bound to. */
  readonly address: string;
  /**
   * Graceful stop: refuses new calls, ends Receive streams with UNAVAILABLE, lets SendPacks in
   * progress finish, flushes writes and subscription state, closes the store.
   */
  stop(): Promise<void>;
}

/** Opens the store and starts serving. Throws NerveBusError on bad config or an unusable store. */
export async function startNerveBus(config: Config, log: Logger): Promise<NerveBus> {
  const store = await openStore(config.store, {
    mysqlPoolSize: config.mysqlPoolSize,
    mysqlAllowUnsafeDurability: config.mysqlAllowUnsafeDurability,
    log,
  });
  const broker = new Broker(store, {
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
    log,
  });
  let server: RunningServer;
  try {
    server = await startServer(broker, {
      listen: config.listen,
      // A full pack plus protobuf framing per message.
      maxMessageBytes: config.maxPackBytes + config.maxPackMessages * 64 + (1 << 20),
      heartbeatMs: config.heartbeatMs,
      keepaliveMs: config.keepaliveMs,
    });
  } catch (err) {
    await broker.close(1000);
    throw err;
  }
  log("info", "nervebus serving", {
    address: server.address,
    store: config.store.replace(/\/\/[^@/]*@/, "//***@"),
  });
  let stopping: Promise<void> | undefined;
  return {
    broker,
    server,
    address: server.address,
    stop() {
      stopping ??= (async () => {
        await server.shutdown(config.shutdownGraceMs);
        await broker.close(config.shutdownGraceMs);
        log("info", "nervebus stopped");
      })();
      return stopping;
    },
  };
}
