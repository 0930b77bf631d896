import type { IncomingMessage, ServerResponse } from "node:http";
import type { Counter, Histogram, Meter } from "@opentelemetry/api";
import { PrometheusExporter } from "@opentelemetry/exporter-prometheus";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { MeterProvider } from "@opentelemetry/sdk-metrics";

/** Latency buckets in seconds: 0.5 ms to 30 s. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Rows per store batch. */
const ROW_BUCKETS = [1, 10, 50, 100, 250, 500, 1000, 2500, 5000];

/** Gauges are read from the broker when Prometheus scrapes. */
export interface GaugeSource {
  subscriptions(): {
    topic: string;
    subscription: string;
    backlog: number;
    inFlight: number;
    consumers: number;
  }[];
  openStreams(): number;
  bufferedBytes(): number;
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

  constructor(gauges: GaugeSource) {
    // Served from the broker's own HTTP server (/metrics), not a second port.
    this.#exporter = new PrometheusExporter({ preventServerStart: true });
    this.provider = new MeterProvider({
      readers: [this.#exporter],
      resource: resourceFromAttributes({ "service.name": process.env.OTEL_SERVICE_NAME ?? "nervebus" }),
    });
    const m: Meter = this.provider.getMeter("nervebus");
    this.published = m.createCounter("nervebus_messages_published", {
      description: "Messages appended to topics",
    });
    this.publishedBytes = m.createCounter("nervebus_published_bytes", {
      description: "Bytes appended to topics (payload and metadata)",
    });
    this.confirmSeconds = m.createHistogram("nervebus_publish_confirm_seconds", {
      description: "SendPack latency: request received to durable confirm",
      advice: { explicitBucketBoundaries: LATENCY_BUCKETS },
    });
    this.endToEndSeconds = m.createHistogram("nervebus_end_to_end_seconds", {
      description: "Publish time to delivery to a consumer (first deliveries)",
      advice: { explicitBucketBoundaries: LATENCY_BUCKETS },
    });
    this.delivered = m.createCounter("nervebus_messages_delivered", {
      description: "Deliveries to consumers, redeliveries included",
    });
    this.settled = m.createCounter("nervebus_messages_settled", {
      description: "Messages acked, nacked, expired or dead-lettered, by outcome",
    });
    this.redeliveries = m.createCounter("nervebus_redeliveries", {
      description: "Deliveries with attempt > 1",
    });
    this.deadLetters = m.createCounter("nervebus_dead_letters", {
      description: "Messages dead-lettered (or dropped after max attempts)",
    });
    this.storeBatchRows = m.createHistogram("nervebus_store_batch_rows", {
      description: "Rows per store statement, by operation",
      advice: { explicitBucketBoundaries: ROW_BUCKETS },
    });
    this.storeSeconds = m.createHistogram("nervebus_store_seconds", {
      description: "Store statement latency, by operation",
      advice: { explicitBucketBoundaries: LATENCY_BUCKETS },
    });
    this.storeErrors = m.createCounter("nervebus_store_errors", {
      description: "Failed store calls (retried), by operation",
    });
    const backlog = m.createObservableGauge("nervebus_subscription_backlog", {
      description: "Messages published and not acked",
    });
    const inFlight = m.createObservableGauge("nervebus_subscription_in_flight", {
      description: "Messages leased to consumers",
    });
    const consumers = m.createObservableGauge("nervebus_subscription_consumers", {
      description: "Connected Receive streams",
    });
    const streams = m.createObservableGauge("nervebus_open_streams", { description: "Open Receive streams" });
    const buffered = m.createObservableGauge("nervebus_write_buffer_bytes", {
      description: "Bytes waiting for the store",
    });
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
      },
      [backlog, inFlight, consumers, streams, buffered],
    );
  }

  /** Serves the Prometheus text exposition. */
  handle(req: IncomingMessage, res: ServerResponse): void {
    this.#exporter.getMetricsRequestHandler(req, res);
  }

  shutdown(): Promise<void> {
    return this.provider.shutdown();
  }
}
