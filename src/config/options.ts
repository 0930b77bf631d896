import {
  ACK_DEADLINE_MS,
  BACKOFF_MS,
  DEDUP_WINDOW_MS,
  DELIVERY_ATTEMPTS,
  RETENTION_BYTES,
  RETENTION_MS,
  SHARDS,
} from "../core/index.js";
import { budgetShare, DEFAULT_MEMORY_BUDGET } from "./memory-budget.js";

/** Everything `nervebus serve` can be told. */
export interface Config {
  listen: string;
  httpListen: string;
  httpAllowedHosts: string;
  tlsCert: string;
  tlsKey: string;
  tlsClientCa: string;
  authTokens: string;
  authJwks: string;
  authJwtIssuer: string;
  authJwtAudience: string;
  authJwtPrincipalClaim: string;
  authPolicy: string;
  requireAuth: boolean;
  securityReloadMs: number;
  store: string;
  shards: number;
  autoCreate: boolean;
  maxMessageBytes: number;
  maxPackMessages: number;
  maxPackBytes: number;
  memoryBudget: number;
  packBytesInProgress: number;
  writeBufferBytes: number;
  tailCacheBytes: number;
  tailCacheTotalBytes: number;
  readAheadBytes: number;
  leaseBytes: number;
  streamBufferBytes: number;
  confirmTimeoutMs: number;
  statePersistIntervalMs: number;
  retentionMs: number;
  retentionBytes: number;
  dedupWindowMs: number;
  retentionIntervalMs: number;
  ackDeadlineMs: number;
  maxDeliveryAttempts: number;
  minBackoffMs: number;
  maxBackoffMs: number;
  heartbeatMs: number;
  keepaliveMs: number;
  maxConnectionIdleMs: number;
  handshakeTimeoutMs: number;
  maxPacksPerConnection: number;
  maxPacksInProgress: number;
  maxTopics: number;
  maxConnections: number;
  maxOpenConnections: number;
  httpMaxConnections: number;
  maxConnectionsPerPrincipal: number;
  maxStreamsPerPrincipal: number;
  maxPacksPerPrincipal: number;
  maxSubscriptionsPerTopic: number;
  maxTopicsPerPrincipal: number;
  maxSubscriptionsPerPrincipal: number;
  publishQuotaMessages: number;
  publishQuotaBytes: number;
  maxConcurrentStreams: number;
  healthIntervalMs: number;
  shutdownGraceMs: number;
  mysqlPoolSize: number;
  mysqlStallTimeoutMs: number;
  mysqlAllowUnsafeDurability: boolean;
  sqliteWriterThread: boolean;
  leaseTtlMs: number;
  leaseRenewMs: number;
  leaseWaitMs: number;
  cluster: boolean;
  advertiseAddress: string;
  clusterTlsCa: string;
  outbox: string;
  outboxPollMs: number;
  outboxGapWaitMs: number;
  outboxBatchRows: number;
  logLevel: "debug" | "info" | "warn" | "error";
}

type Kind = "string" | "int" | "bytes" | "duration" | "bool" | "enum";

/** One setting: its flag, environment variable, type, default, range and meaning. */
export interface OptionSpec {
  readonly key: keyof Config;
  readonly kind: Kind;
  readonly default: Config[keyof Config];
  readonly min?: number;
  readonly max?: number;
  readonly values?: readonly string[];
  readonly doc: string;
}

const MiB = 1 << 20;
const GiB = 1024 * MiB;

/** The settings, in the order the README's table lists them. */
export const OPTIONS: readonly OptionSpec[] = [
  {
    key: "listen",
    kind: "string",
    default: "127.0.0.1:7070",
    doc: "gRPC listen address HOST:PORT (port 0 picks a free one)",
  },
  {
    key: "httpListen",
    kind: "string",
    default: "127.0.0.1:7071",
    doc: "HTTP address of the status page, /metrics (Prometheus) and /healthz; off to disable",
  },
  {
    key: "httpAllowedHosts",
    kind: "string",
    default: "",
    doc: "host names (comma-separated) the HTTP port answers besides its own address; any other Host header gets 403 (DNS rebinding guard)",
  },
  {
    key: "tlsCert",
    kind: "string",
    default: "",
    doc: "PEM certificate (chain) of the broker; with --tls-key, both ports speak TLS only",
  },
  { key: "tlsKey", kind: "string", default: "", doc: "PEM private key of --tls-cert" },
  {
    key: "tlsClientCa",
    kind: "string",
    default: "",
    doc: "PEM CA bundle: clients must present a certificate it signed (mTLS); its subject CN (else first URI/DNS/email SAN) is their principal",
  },
  {
    key: "authTokens",
    kind: "string",
    default: "",
    doc: "file of static bearer tokens, one `SHA256HEX PRINCIPAL` per line (the token's SHA-256, never the token)",
  },
  {
    key: "authJwks",
    kind: "string",
    default: "",
    doc: "JWKS file whose RS256/ES256 keys verify JWT bearer tokens (needs --auth-jwt-issuer and --auth-jwt-audience)",
  },
  { key: "authJwtIssuer", kind: "string", default: "", doc: "the `iss` a JWT must carry" },
  { key: "authJwtAudience", kind: "string", default: "", doc: "the `aud` a JWT must carry (or list)" },
  {
    key: "authJwtPrincipalClaim",
    kind: "string",
    default: "sub",
    doc: "the JWT claim that names the principal",
  },
  {
    key: "authPolicy",
    kind: "string",
    default: "",
    doc: "JSON policy: per principal, publish/subscribe/admin on topic and subscription patterns; without it every authenticated principal may do everything",
  },
  {
    key: "requireAuth",
    kind: "bool",
    default: false,
    doc: "refuse to start without TLS and authentication (tokens, JWTs or client certificates)",
  },
  {
    key: "securityReloadMs",
    kind: "duration",
    default: 60_000,
    min: 0,
    max: 86_400_000,
    doc: "how often TLS, token, JWKS and policy files are checked for changes (SIGHUP re-reads them at once; 0: only then)",
  },
  {
    key: "store",
    kind: "string",
    default: "sqlite:./data/nervebus.db",
    doc: "sqlite:PATH or mysql://USER:PASS@HOST:PORT/DB; several MySQL URLs, comma-separated, spread topics over those databases (the first holds the placement catalog)",
  },
  {
    key: "shards",
    kind: "int",
    default: 4,
    ...SHARDS,
    doc: "shard tables of a topic created on first use",
  },
  { key: "autoCreate", kind: "bool", default: true, doc: "create topics and subscriptions on first use" },
  {
    key: "maxMessageBytes",
    kind: "bytes",
    default: MiB,
    min: 1024,
    max: 64 * MiB,
    doc: "largest message (data + attributes + keys)",
  },
  {
    key: "maxPackMessages",
    kind: "int",
    default: 10_000,
    min: 1,
    max: 1_000_000,
    doc: "most messages in one SendPack",
  },
  {
    key: "maxPackBytes",
    kind: "bytes",
    default: 8 * MiB,
    min: 1024,
    max: 256 * MiB,
    doc: "largest SendPack",
  },
  {
    key: "memoryBudget",
    kind: "bytes",
    default: DEFAULT_MEMORY_BUDGET,
    min: 16 * MiB,
    max: 256 * GiB,
    doc: 'memory the broker may hold for clients, all together; the six settings below default to their shares of it (see "What bounds the broker\'s memory")',
  },
  {
    key: "packBytesInProgress",
    kind: "bytes",
    default: budgetShare("packBytesInProgress", DEFAULT_MEMORY_BUDGET),
    min: MiB,
    max: 64 * GiB,
    doc: "SendPack (and Publish stream) request bytes held at once (25% of --memory-budget); a pack is counted at --max-pack-bytes until its body arrives, then at its size; one more gets RESOURCE_EXHAUSTED before its body is read",
  },
  {
    key: "writeBufferBytes",
    kind: "bytes",
    default: budgetShare("writeBufferBytes", DEFAULT_MEMORY_BUDGET),
    min: MiB,
    max: 64 * GiB,
    doc: "bytes waiting for the store before SendPack waits, then gets RESOURCE_EXHAUSTED (18.75% of --memory-budget)",
  },
  {
    key: "tailCacheBytes",
    kind: "bytes",
    default: 16 * MiB,
    min: 0,
    max: 4096 * MiB,
    doc: "recent messages kept in memory per topic, as stored runs (their bytes plus ~320 B per run)",
  },
  {
    key: "tailCacheTotalBytes",
    kind: "bytes",
    default: budgetShare("tailCacheTotalBytes", DEFAULT_MEMORY_BUDGET),
    min: 0,
    max: 64 * GiB,
    doc: "recent messages kept in memory for all topics together (18.75% of --memory-budget); the least recently written topics' caches go first (0: no bound beyond each topic's)",
  },
  {
    key: "readAheadBytes",
    kind: "bytes",
    default: budgetShare("readAheadBytes", DEFAULT_MEMORY_BUDGET),
    min: MiB,
    max: 64 * GiB,
    doc: "rows lagging subscriptions read ahead from the store, all together (12.5% of --memory-budget; 64 KiB – 4 MiB per read each)",
  },
  {
    key: "leaseBytes",
    kind: "bytes",
    default: budgetShare("leaseBytes", DEFAULT_MEMORY_BUDGET),
    min: MiB,
    max: 64 * GiB,
    doc: "delivered messages not acked yet, all subscriptions together, at ~283 B each plus their ordering keys, and messages held back behind those keys (12.5% of --memory-budget); past it subscriptions hand out no new first deliveries (redeliveries and acks go on) unless they hold less than an equal share",
  },
  {
    key: "streamBufferBytes",
    kind: "bytes",
    default: budgetShare("streamBufferBytes", DEFAULT_MEMORY_BUDGET),
    min: MiB,
    max: 64 * GiB,
    doc: "answers (deliveries, ack confirmations) waiting for slow Receive readers, all streams together (12.5% of --memory-budget; at most 1 MiB per stream); past it streams wait for their readers",
  },

  {
    key: "confirmTimeoutMs",
    kind: "duration",
    default: 30_000,
    min: 100,
    max: 600_000,
    doc: "longest a SendPack or Publish batch without deadline waits (for its topic, dedup index, durability) before UNAVAILABLE",
  },
  {
    key: "statePersistIntervalMs",
    kind: "duration",
    default: 50,
    min: 1,
    max: 10_000,
    doc: "coalescing interval of subscription state writes",
  },
  {
    key: "retentionMs",
    kind: "duration",
    default: 7 * 24 * 3_600_000,
    ...RETENTION_MS,
    doc: "default retention of new topics (0 keeps messages forever)",
  },
  {
    key: "retentionBytes",
    kind: "bytes",
    default: 0,
    ...RETENTION_BYTES,
    doc: "default size limit of new topics' logs (0: none)",
  },
  {
    key: "dedupWindowMs",
    kind: "duration",
    default: 120_000,
    ...DEDUP_WINDOW_MS,
    doc: "default message-id dedup window of new topics (0: off)",
  },
  {
    key: "retentionIntervalMs",
    kind: "duration",
    default: 30_000,
    min: 100,
    max: 3_600_000,
    doc: "how often retention runs per topic",
  },
  {
    key: "maxDeliveryAttempts",
    kind: "int",
    default: 0,
    ...DELIVERY_ATTEMPTS,
    doc: "default delivery attempts before dead-lettering (0: unlimited)",
  },
  {
    key: "ackDeadlineMs",
    kind: "duration",
    default: 30_000,
    ...ACK_DEADLINE_MS,
    doc: "default ack deadline of subscriptions",
  },
  {
    key: "minBackoffMs",
    kind: "duration",
    default: 1000,
    min: 0,
    max: 600_000,
    doc: "default minimum redelivery backoff",
  },
  {
    key: "maxBackoffMs",
    kind: "duration",
    default: 60_000,
    ...BACKOFF_MS,
    doc: "default maximum redelivery backoff",
  },
  {
    key: "heartbeatMs",
    kind: "duration",
    default: 5000,
    min: 100,
    max: 600_000,
    doc: "idle time before a Receive stream gets a heartbeat",
  },
  {
    key: "keepaliveMs",
    kind: "duration",
    default: 30_000,
    min: 1000,
    max: 3_600_000,
    doc: "server HTTP/2 keepalive ping interval",
  },
  {
    key: "maxConnectionIdleMs",
    kind: "duration",
    default: 300_000,
    min: 1000,
    max: 86_400_000,
    doc: "a client connection with no call in progress for this long is closed (GOAWAY); clients reconnect on their next call",
  },
  {
    key: "handshakeTimeoutMs",
    kind: "duration",
    default: 10_000,
    min: 100,
    max: 600_000,
    doc: "a new connection that has not finished TLS (with TLS) and sent the HTTP/2 preface (gRPC port) or a request's full headers (HTTP port; a kept-alive connection's later requests: within a second more) within this is cut",
  },
  {
    key: "maxPacksPerConnection",
    kind: "int",
    default: 32,
    min: 1,
    max: 10_000,
    doc: "SendPack calls (and open Publish streams) in progress on one connection; more are refused with RESOURCE_EXHAUSTED before their body is read",
  },
  {
    key: "maxPacksInProgress",
    kind: "int",
    default: 64,
    min: 1,
    max: 100_000,
    doc: "SendPack calls (and open Publish streams) in progress on the broker; bounds the request bytes held to this × --max-pack-bytes",
  },
  {
    key: "maxPacksPerPrincipal",
    kind: "int",
    default: 32,
    min: 1,
    max: 100_000,
    doc: "SendPack calls (and open Publish streams) one principal (one client address without auth) may have in progress, its share of --max-packs-in-progress",
  },
  {
    key: "maxConnections",
    kind: "int",
    default: 1000,
    min: 1,
    max: 1_000_000,
    doc: "client connections with calls in progress; a call from one more gets RESOURCE_EXHAUSTED (health checks are always answered)",
  },
  {
    key: "maxOpenConnections",
    kind: "int",
    default: 10_000,
    min: 1,
    max: 1_000_000,
    doc: "TCP connections open on the gRPC port, idle or not (each holds a file descriptor: keep it under the process's limit); one more is closed as soon as it is accepted",
  },
  {
    key: "httpMaxConnections",
    kind: "int",
    default: 256,
    min: 1,
    max: 1_000_000,
    doc: "TCP connections open on the HTTP port (--http-listen), a budget of its own so that health probes and scrapes get in while the gRPC port is full, and the other way round (keep both caps together under the process's file descriptor limit); one more is closed as soon as it is accepted",
  },
  {
    key: "maxConnectionsPerPrincipal",
    kind: "int",
    default: 100,
    min: 1,
    max: 1_000_000,
    doc: "client connections with calls in progress one principal (one client address without auth) may have, its share of --max-connections; a call on one more gets RESOURCE_EXHAUSTED",
  },
  {
    key: "maxStreamsPerPrincipal",
    kind: "int",
    default: 1000,
    min: 1,
    max: 1_000_000,
    doc: "Receive and Publish streams one principal (one client address without auth) may have open; one more gets RESOURCE_EXHAUSTED",
  },
  {
    key: "maxTopics",
    kind: "int",
    default: 5000,
    min: 1,
    max: 1_000_000,
    doc: "topics clients may create (each has tables in the store); more are refused with RESOURCE_EXHAUSTED",
  },
  {
    key: "maxSubscriptionsPerTopic",
    kind: "int",
    default: 1000,
    min: 1,
    max: 1_000_000,
    doc: "subscriptions one topic may have; more are refused with RESOURCE_EXHAUSTED",
  },
  {
    key: "maxTopicsPerPrincipal",
    kind: "int",
    default: 1000,
    min: 1,
    max: 1_000_000,
    doc: "topics one principal (one client address without auth) may have created, by publishing, subscribing or CreateTopic; more are refused with RESOURCE_EXHAUSTED (those made before a lower limit count and stay)",
  },
  {
    key: "maxSubscriptionsPerPrincipal",
    kind: "int",
    default: 1000,
    min: 1,
    max: 1_000_000,
    doc: "subscriptions one principal (one client address without auth) may have created on all topics; more are refused with RESOURCE_EXHAUSTED (those made before a lower limit count and stay)",
  },
  {
    key: "publishQuotaMessages",
    kind: "int",
    default: 0,
    min: 0,
    max: 1_000_000_000,
    doc: "messages per second each principal (each client address without auth) may publish; over it, RESOURCE_EXHAUSTED with a retry delay (0: no quota)",
  },
  {
    key: "publishQuotaBytes",
    kind: "bytes",
    default: 0,
    min: 0,
    max: 1 << 40,
    doc: "payload bytes per second each principal (each client address without auth) may publish (0: no quota)",
  },
  {
    key: "maxConcurrentStreams",
    kind: "int",
    default: 100,
    min: 1,
    max: 100_000,
    doc: "calls and streams in progress per client connection (HTTP/2 MAX_CONCURRENT_STREAMS; more wait on the client); bounds the request bytes held to connections × this × pack size",
  },
  {
    key: "healthIntervalMs",
    kind: "duration",
    default: 5000,
    min: 100,
    max: 600_000,
    doc: "how often the store is pinged; gRPC health is NOT_SERVING while it does not answer",
  },
  {
    key: "shutdownGraceMs",
    kind: "duration",
    default: 10_000,
    min: 0,
    max: 600_000,
    doc: "how long SIGTERM waits for calls in progress and the store's last writes (at least 1 s for those); then MySQL connections still waiting are cut",
  },
  {
    key: "mysqlPoolSize",
    kind: "int",
    default: 12,
    min: 2,
    max: 256,
    doc: "MySQL connections (one per shard writer plus readers)",
  },
  {
    key: "mysqlStallTimeoutMs",
    kind: "duration",
    default: 30_000,
    min: 1000,
    max: 600_000,
    doc: "MySQL: how long a server may answer nothing while a statement waits before its connections are cut and its host dialed again (a dead primary, dropped packets)",
  },
  {
    key: "mysqlAllowUnsafeDurability",
    kind: "bool",
    default: false,
    doc: "start even if innodb_flush_log_at_trx_commit is not 1 (confirmed messages may be lost)",
  },
  {
    key: "sqliteWriterThread",
    kind: "bool",
    default: false,
    doc: "SQLite: commit writes (and wait for their fsync) on a thread of their own, off the event loop",
  },
  {
    key: "leaseTtlMs",
    kind: "duration",
    default: 5000,
    min: 1000,
    max: 600_000,
    doc: "MySQL: how long this broker's ownership of the database lasts without renewal; another broker takes over after it",
  },
  {
    key: "leaseRenewMs",
    kind: "duration",
    default: 1000,
    min: 100,
    max: 300_000,
    doc: "MySQL: how often the ownership lease is renewed (at most a third of --lease-ttl-ms)",
  },
  {
    key: "leaseWaitMs",
    kind: "duration",
    default: 10_000,
    min: 0,
    max: 3_600_000,
    doc: "MySQL: how long start-up waits for another broker's lease to expire before failing",
  },
  {
    key: "cluster",
    kind: "bool",
    default: false,
    doc: "MySQL: share the database(s) of --store with the other brokers started with --cluster, each topic owned by one of them (by a lease in the database it lives in); without it one broker owns the database(s) and a second one takes over from it",
  },
  {
    key: "advertiseAddress",
    kind: "string",
    default: "",
    doc: "--cluster: HOST:PORT other brokers forward calls to (default: the gRPC address as bound)",
  },
  {
    key: "clusterTlsCa",
    kind: "string",
    default: "",
    doc: "--cluster with TLS: PEM CA bundle that verifies the other brokers' certificates (default: --tls-client-ca, else the system's trusted roots)",
  },
  {
    key: "outbox",
    kind: "string",
    default: "",
    doc: "transactional outboxes to relay: mysql://USER:PASS@HOST:PORT/DB of application databases holding nb_outbox, comma-separated",
  },
  {
    key: "outboxPollMs",
    kind: "duration",
    default: 10,
    min: 1,
    max: 60_000,
    doc: "how often an idle outbox is polled (a busy one is read again at once)",
  },
  {
    key: "outboxGapWaitMs",
    kind: "duration",
    default: 100,
    min: 0,
    max: 600_000,
    doc: "how long an outbox row waits for a missing lower id (a transaction not yet committed, or rolled back) before the relay passes the gap",
  },
  {
    key: "outboxBatchRows",
    kind: "int",
    default: 10_000,
    min: 1,
    max: 100_000,
    doc: "most outbox rows read and relayed per round (fewer while rounds hold over 16 MiB of payload)",
  },
  {
    key: "logLevel",
    kind: "enum",
    default: "info",
    values: ["debug", "info", "warn", "error"],
    doc: "log level",
  },
];
