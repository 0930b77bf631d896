import type { IncomingMessage, ServerResponse } from "node:http";
import type { Counter, Histogram, Meter } from "@opentelemetry/api";
import { PrometheusExporter } from "@opentelemetry/exporter-prometheus";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { MeterProvider } from "@opentelemetry/sdk-metrics";
import type {
  ClusterView,
  OwnershipState,
  ReadOnlyState,
  SpaceState,
  SubscriptionGauge,
} from "../core/index.js";
import { sampleEventLoopDelay, TICK_MS } from "./event-loop-delay.js";

/** Latency buckets in seconds: 0.5 ms to 30 s. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Rows per store batch. */
const ROW_BUCKETS = [1, 10, 50, 100, 250, 500, 1000, 2500, 5000];

/** Every metric's help text, as a scrape shows it, by Prometheus name. */
const HELP = {
  nervebus_messages_published: "Messages appended to topics",
  nervebus_published_bytes: "Bytes appended to topics (payload and metadata)",
  nervebus_publish_confirm_seconds: "SendPack latency: request received to durable confirm",
  nervebus_end_to_end_seconds: "Publish time to delivery to a consumer (first deliveries)",
  nervebus_messages_delivered: "Deliveries to consumers, redeliveries included",
  nervebus_messages_settled: "Messages acked, nacked, expired or dead-lettered, by outcome",
  nervebus_redeliveries: "Deliveries with attempt > 1",
  nervebus_dead_letters: "Messages dead-lettered (or dropped after max attempts)",
  nervebus_store_batch_rows: "Rows per store statement, by operation",
  nervebus_store_seconds: "Store statement latency, by operation",
  nervebus_store_errors: "Failed store calls (retried), by operation",
  nervebus_event_loop_delay_seconds: `How late the broker's event loop ran a timer due every ${TICK_MS} ms: the time its thread was busy or paused, unable to serve anything`,
  nervebus_subscription_backlog: "Messages published and not acked",
  nervebus_subscription_in_flight: "Messages leased to consumers",
  nervebus_subscription_consumers: "Connected Receive streams",
  nervebus_open_streams: "Open Receive streams",
  nervebus_write_buffer_bytes: "Bytes waiting for the store",
  nervebus_memory_budget_bytes: "Share of --memory-budget of each part of the broker's memory",
  nervebus_memory_used_bytes: "Bytes each part of the broker's memory budget holds now",
  nervebus_store_owner_epoch: "Fencing epoch of this broker's ownership of the store (0: a file lock)",
  nervebus_store_lease_age_seconds: "Seconds since this broker's store lease was last renewed",
  nervebus_store_owner_valid: "1 while this broker owns the store and its lease is current, else 0",
  nervebus_store_disk_full:
    "1 while writes to the store's file or database fail for lack of disk space (publishes are refused), else 0; by place",
  nervebus_store_read_only:
    "1 while the MySQL server refuses the broker's writes as read-only (a failover in progress: writes are retried, the broker reconnects), else 0; by HOST:PORT and role (store, or outbox: an --outbox relay's database)",
  nervebus_store_database_topics_owned:
    "Topics this broker owns in each MySQL database of --store (--cluster with several databases), by HOST:PORT/DATABASE",
  nervebus_cluster_brokers:
    "Live brokers of this broker's cluster (--cluster), as its last heartbeat saw them",
  nervebus_cluster_topics_owned:
    "Topics each broker of the cluster owns (--cluster), as this broker's last heartbeat saw them",
  nervebus_cluster_topic_lease_age_seconds:
    "Seconds since this broker's lease of the topic was taken or renewed (--cluster)",
  nervebus_cluster_failovers:
    "Topics this broker took over after their owner's lease lapsed, since it started (--cluster)",
  nervebus_cluster_handovers:
    "Topics this broker took over from a broker that handed them over, since it started (--cluster)",
  nervebus_outbox_rows_relayed: "Outbox rows published into their topics by the relay (--outbox), per outbox",
  nervebus_outbox_relay_lag_seconds:
    "Age since its INSERT of the oldest row of the relay's last round when it was durable; 0 when the outbox is empty (--outbox)",
  nervebus_outbox_poll_errors:
    "Relay rounds that failed and were retried after a recovery (--outbox), per outbox",
  nervebus_connections_refused:
    "TCP connections the broker refused or cut, by port (grpc, http) and reason: limit (over the port's cap of open connections), handshake_timeout (no TLS handshake and HTTP/2 preface or request headers within --handshake-timeout-ms), linger (still open 5 s after the broker closed it)",
} as const;

type MetricName = keyof typeof HELP;

/** One part of the broker's memory budget: its share and what it holds now. */
export interface MemoryPartUse {
  readonly part: string;
  readonly limitBytes: number;
  readonly usedBytes: number;
}

/** Gauges are read from the broker when Prometheus scrapes. */
export interface GaugeSource {
  subscriptions(): readonly SubscriptionGauge[];
  openStreams(): number;
  bufferedBytes(): number;
  /** The memory budget's parts (request bytes, write buffer, tail caches, …). */
  memory(): readonly MemoryPartUse[];
  /** Each file or database of the store and whether it is out of disk space. */
  spaceState?(): readonly SpaceState[];
  /** Each MySQL server of the store and of the outboxes and whether it refuses writes as read-only. */
  readOnlyState?(): readonly ReadOnlyState[];
  /** Who owns the store (status of the lease); undefined before the store is open. */
  ownership(): OwnershipState | undefined;
  /** The cluster as this broker sees it; undefined without --cluster. */
  cluster?(): ClusterView | undefined;
  /** Each outbox relay's figures (--outbox); none without outboxes. */
  outboxes?(): readonly OutboxGauge[];
}

/** One outbox relay's figures. */
export interface OutboxGauge {
  /** The outbox, as its relay names it in logs (no credentials). */
  readonly outbox: string;
  readonly relayed: number;
  readonly errors: number;
  readonly lagMs: number;
}

/** The broker's instruments. Names are Prometheus names (the exporter adds _total to counters). */
export class Metrics {
  readonly provider: MeterProvider;
  readonly #exporter: PrometheusExporter;
  readonly published: Counter;
  readonly publishedBytes: Counter;
  readonly confirmSeconds: Histogram;
  readonly endToEndSeconds: Histogram;
  readonly delivered: Counter;
  readonly settled: Counter;
  readonly redeliveries: Counter;
  readonly deadLetters: Counter;
  readonly storeBatchRows: Histogram;
  readonly storeSeconds: Histogram;
  readonly storeErrors: Counter;
  readonly connectionsRefused: Counter;
  readonly eventLoopDelay: Histogram;
  readonly #stopSampling: () => void;

  constructor(gauges: GaugeSource) {
    // Served from the broker's own HTTP server (/metrics), not a second port.
    this.#exporter = new PrometheusExporter({ preventServerStart: true });
    this.provider = new MeterProvider({
      readers: [this.#exporter],
      resource: resourceFromAttributes({ "service.name": process.env.OTEL_SERVICE_NAME ?? "nervebus" }),
    });
    const m: Meter = this.provider.getMeter("nervebus");
    const counter = (name: MetricName) => m.createCounter(name, { description: HELP[name] });
    const histogram = (name: MetricName, buckets: number[]) =>
      m.createHistogram(name, { description: HELP[name], advice: { explicitBucketBoundaries: buckets } });
    const gauge = (name: MetricName) => m.createObservableGauge(name, { description: HELP[name] });
    this.published = counter("nervebus_messages_published");
    this.publishedBytes = counter("nervebus_published_bytes");
    this.confirmSeconds = histogram("nervebus_publish_confirm_seconds", LATENCY_BUCKETS);
    this.endToEndSeconds = histogram("nervebus_end_to_end_seconds", LATENCY_BUCKETS);
    this.delivered = counter("nervebus_messages_delivered");
    this.settled = counter("nervebus_messages_settled");
    this.redeliveries = counter("nervebus_redeliveries");
    this.deadLetters = counter("nervebus_dead_letters");
    this.storeBatchRows = histogram("nervebus_store_batch_rows", ROW_BUCKETS);
    this.storeSeconds = histogram("nervebus_store_seconds", LATENCY_BUCKETS);
    this.storeErrors = counter("nervebus_store_errors");
    this.connectionsRefused = counter("nervebus_connections_refused");
    this.eventLoopDelay = histogram("nervebus_event_loop_delay_seconds", LATENCY_BUCKETS);
    const loopDelay = this.eventLoopDelay;
    this.#stopSampling = sampleEventLoopDelay((seconds) => loopDelay.record(seconds));
    const backlog = gauge("nervebus_subscription_backlog");
    const inFlight = gauge("nervebus_subscription_in_flight");
    const consumers = gauge("nervebus_subscription_consumers");
    const streams = gauge("nervebus_open_streams");
    const buffered = gauge("nervebus_write_buffer_bytes");
    const epoch = gauge("nervebus_store_owner_epoch");
    const leaseAge = gauge("nervebus_store_lease_age_seconds");
    const owner = gauge("nervebus_store_owner_valid");
    const diskFull = gauge("nervebus_store_disk_full");
    const readOnly = gauge("nervebus_store_read_only");
    const ownedPerDatabase = gauge("nervebus_store_database_topics_owned");
    const brokers = gauge("nervebus_cluster_brokers");
    const owned = gauge("nervebus_cluster_topics_owned");
    const topicLeaseAge = gauge("nervebus_cluster_topic_lease_age_seconds");
    const failovers = gauge("nervebus_cluster_failovers");
    const handovers = gauge("nervebus_cluster_handovers");
    const budget = gauge("nervebus_memory_budget_bytes");
    const used = gauge("nervebus_memory_used_bytes");
    const observedCounter = (name: MetricName) =>
      m.createObservableCounter(name, { description: HELP[name] });
    const outboxRelayed = observedCounter("nervebus_outbox_rows_relayed");
    const outboxErrors = observedCounter("nervebus_outbox_poll_errors");
    const outboxLag = gauge("nervebus_outbox_relay_lag_seconds");
    m.addBatchObservableCallback(
      (r) => {
        for (const s of gauges.subscriptions()) {
          const attrs = { topic: s.topic, subscription: s.subscription };
          r.observe(backlog, s.backlog, attrs);
          r.observe(inFlight, s.inFlight, attrs);
          r.observe(consumers, s.consumers, attrs);
        }
        r.observe(streams, gauges.openStreams());
        r.observe(buffered, gauges.bufferedBytes());
        for (const p of gauges.memory()) {
          r.observe(budget, p.limitBytes, { part: p.part });
          r.observe(used, p.usedBytes, { part: p.part });
        }
        const own = gauges.ownership();
        if (own !== undefined) {
          r.observe(epoch, own.epoch);
          r.observe(leaseAge, own.ageMs / 1000);
          r.observe(owner, own.valid ? 1 : 0);
          // The key names host, port and database only: URLs' credentials never reach a label.
          for (const d of own.databases ?? [])
            if (d.topicsOwned !== undefined) r.observe(ownedPerDatabase, d.topicsOwned, { database: d.key });
        }
        // The SQLite file or HOST:PORT/DATABASE: never a URL's credentials.
        for (const p of gauges.spaceState?.() ?? []) r.observe(diskFull, p.full ? 1 : 0, { place: p.place });
        // HOST:PORT as configured; role "store" or "outbox" (a relay's, the application's database).
        for (const s of gauges.readOnlyState?.() ?? [])
          r.observe(readOnly, s.readOnly ? 1 : 0, { server: s.server, role: s.role });
        const cluster = gauges.cluster?.();
        if (cluster !== undefined) {
          r.observe(brokers, cluster.members.filter((b) => b.live).length);
          for (const b of cluster.members) {
            r.observe(owned, b.topics.length, { broker: b.id, address: b.address });
            if (b.id !== cluster.self) continue;
            for (const t of b.topics) r.observe(topicLeaseAge, t.leaseAgeMs / 1000, { topic: t.name });
          }
          r.observe(failovers, cluster.failovers);
          r.observe(handovers, cluster.handovers);
        }
        for (const o of gauges.outboxes?.() ?? []) {
          const attrs = { outbox: o.outbox };
          r.observe(outboxRelayed, o.relayed, attrs);
          r.observe(outboxErrors, o.errors, attrs);
          r.observe(outboxLag, o.lagMs / 1000, attrs);
        }
      },
      [
        backlog,
        inFlight,
        consumers,
        streams,
        buffered,
        epoch,
        leaseAge,
        owner,
        diskFull,
        readOnly,
        ownedPerDatabase,
        brokers,
        owned,
        topicLeaseAge,
        failovers,
        handovers,
        budget,
        used,
        outboxRelayed,
        outboxErrors,
        outboxLag,
      ],
    );
  }

  /** Serves the Prometheus text exposition. */
  handle(req: IncomingMessage, res: ServerResponse): void {
    this.#exporter.getMetricsRequestHandler(req, res);
  }

  shutdown(): Promise<void> {
    this.#stopSampling();
    return this.provider.shutdown();
  }
}
