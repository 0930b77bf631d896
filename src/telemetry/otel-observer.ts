import {
  type Context,
  type Link,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import type { BrokerObserver, Delivered, LogMessage, Settled, SettleOutcome } from "../core/index.js";
import { ATTR, SYSTEM } from "./attributes.js";
import type { Metrics } from "./metrics.js";

/** Links per batch span at most: a 5000-row INSERT does not need 5000 links to be useful. */
const MAX_LINKS = 128;

/** The context a message was published with (its traceparent/tracestate attributes). */
export function messageContext(attributes: Record<string, string> | undefined): Context {
  if (attributes?.traceparent === undefined) return ROOT_CONTEXT;
  return propagation.extract(ROOT_CONTEXT, attributes);
}

function linkTo(attributes: Record<string, string>): Link | undefined {
  const sc = trace.getSpanContext(messageContext(attributes));
  return sc === undefined ? undefined : { context: sc };
}

/**
 * Turns what the core reports into metrics, and into spans when tracing is on: a persist span
 * per shard batch linked to its messages, a deliver span per delivery and a settle span per
 * settled message, each a child of the message's own trace context.
 */
export class OtelObserver implements BrokerObserver {
  constructor(
    private readonly metrics: Metrics,
    private readonly tracer: Tracer | undefined,
    private readonly storeKind: string,
  ) {}

  get tracing(): boolean {
    return this.tracer !== undefined;
  }

  batchPersisted(
    topic: string,
    shard: number,
    rows: readonly LogMessage[],
    startedAt: number,
    durationMs: number,
  ): void {
    let bytes = 0;
    for (const r of rows) bytes += r.data.byteLength;
    this.metrics.published.add(rows.length, { topic });
    this.metrics.publishedBytes.add(bytes, { topic });
    this.metrics.storeBatchRows.record(rows.length, { operation: "insert" });
    this.metrics.storeSeconds.record(durationMs / 1000, { operation: "insert" });
    if (this.tracer === undefined) return;
    const links: Link[] = [];
    for (const r of rows) {
      if (links.length >= MAX_LINKS) break;
      const l = linkTo(r.attributes);
      if (l !== undefined) links.push(l);
    }
    const span = this.tracer.startSpan(
      `persist ${topic}`,
      {
        kind: SpanKind.INTERNAL,
        startTime: startedAt,
        links,
        attributes: {
          [ATTR.system]: SYSTEM,
          [ATTR.destination]: topic,
          [ATTR.operationName]: "persist",
          [ATTR.shard]: shard,
          [ATTR.batchCount]: rows.length,
          [ATTR.firstSeq]: rows[0]?.seq ?? 0,
          [ATTR.lastSeq]: rows[rows.length - 1]?.seq ?? 0,
          [ATTR.dbSystem]: this.storeKind,
        },
      },
      ROOT_CONTEXT,
    );
    span.end(startedAt + durationMs);
  }

  storeError(operation: string): void {
    this.metrics.storeErrors.add(1, { operation });
  }

  storeRead(_topic: string, rows: number, durationMs: number): void {
    this.metrics.storeBatchRows.record(rows, { operation: "read" });
    this.metrics.storeSeconds.record(durationMs / 1000, { operation: "read" });
  }

  delivered(topic: string, subscription: string, deliveries: readonly Delivered[]): void {
    const attrs = { topic, subscription };
    const now = Date.now();
    let redelivered = 0;
    // End-to-end latency from at most 32 first deliveries per batch, evenly spread: recording
    // hashes the attributes each time, and a 4000-message batch does not need 4000 samples.
    const step = Math.max(1, Math.floor(deliveries.length / 32));
    for (let i = 0; i < deliveries.length; i++) {
      const d = deliveries[i]!;
      if (d.attempt > 1) redelivered++;
      else if (i % step === 0)
        this.metrics.endToEndSeconds.record(Math.max(0, now - d.message.publishTime) / 1000, attrs);
    }
    this.metrics.delivered.add(deliveries.length, attrs);
    if (redelivered > 0) this.metrics.redeliveries.add(redelivered, attrs);
    if (this.tracer === undefined) return;
    for (const d of deliveries) {
      const parent = messageContext(d.message.attributes);
      if (trace.getSpanContext(parent) === undefined) continue;
      this.tracer
        .startSpan(
          `deliver ${topic}`,
          {
            kind: SpanKind.PRODUCER,
            attributes: {
              [ATTR.system]: SYSTEM,
              [ATTR.destination]: topic,
              [ATTR.subscription]: subscription,
              [ATTR.consumerGroup]: subscription,
              // The broker's side of the consumer's receive.
              [ATTR.operationType]: "receive",
              [ATTR.operationName]: "deliver",
              ...(d.message.messageId === "" ? {} : { [ATTR.messageId]: d.message.messageId }),
              [ATTR.seq]: d.message.seq,
              [ATTR.deliveryAttempt]: d.attempt,
              [ATTR.bodySize]: d.message.data.byteLength,
            },
          },
          parent,
        )
        .end();
    }
  }

  settled(
    topic: string,
    subscription: string,
    outcome: SettleOutcome,
    count: number,
    messages: readonly Settled[],
  ): void {
    if (count === 0) return;
    this.metrics.settled.add(count, { topic, subscription, outcome });
    if (outcome === "dead_letter") this.metrics.deadLetters.add(count, { topic, subscription });
    if (this.tracer === undefined) return;
    for (const m of messages) {
      if (m.traceparent === undefined) continue;
      const parent = messageContext({ traceparent: m.traceparent });
      if (trace.getSpanContext(parent) === undefined) continue;
      this.tracer
        .startSpan(
          `settle ${topic}`,
          {
            kind: SpanKind.SERVER,
            attributes: {
              [ATTR.system]: SYSTEM,
              [ATTR.destination]: topic,
              [ATTR.subscription]: subscription,
              [ATTR.consumerGroup]: subscription,
              [ATTR.operationType]: "settle",
              [ATTR.operationName]: "settle",
              [ATTR.settlement]: outcome,
              [ATTR.seq]: m.seq,
            },
          },
          parent,
        )
        .end();
    }
  }
}
