import {
  type Attributes,
  type Context,
  type Link,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import type { BrokerObserver } from "../core/index.js";
import { decodeMeta, recordOf, recordTime } from "../wire/index.js";
import { ATTR, SYSTEM } from "./attributes.js";
import type { Metrics } from "./metrics.js";

/** Links per batch span at most: a 5000-row INSERT does not need 5000 links to be useful. */
const MAX_LINKS = 128;

/** The context a message was published with (its traceparent/tracestate attributes). */

/** The attributes every span on a subscription's side carries. */
function consumerSide(topic: string, subscription: string): Record<string, string> {
  return {
    [ATTR.system]: SYSTEM,
    [ATTR.destination]: topic,
    [ATTR.subscription]: subscription,
    [ATTR.consumerGroup]: subscription,
  };
}

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
export function otelObserver(
  metrics: Metrics,
  tracer: Tracer | undefined,
  storeKind: string,
): BrokerObserver {
  /** A span of one message's handling, ended at once, as a child of its publish context. */
  const messageSpan = (
    name: string,
    kind: SpanKind,
    traceparent: Record<string, string>,
    attributes: Attributes,
  ): void => {
    const parent = messageContext(traceparent);
    if (tracer === undefined || trace.getSpanContext(parent) === undefined) return;
    tracer.startSpan(name, { kind, attributes }, parent).end();
  };
  return {
    tracing: tracer !== undefined,

    batchPersisted(topic, shard, runs, startedAt, durationMs) {
      let bytes = 0;
      let count = 0;
      for (const r of runs) {
        bytes += r.payloadBytes;
        count += r.lastSeq - r.firstSeq + 1;
      }
      metrics.published.add(count, { topic });
      metrics.publishedBytes.add(bytes, { topic });
      metrics.storeBatchRows.record(count, { operation: "insert" });
      metrics.storeSeconds.record(durationMs / 1000, { operation: "insert" });
      if (tracer === undefined) return;
      const links: Link[] = [];
      for (const run of runs) {
        for (let seq = run.firstSeq; seq <= run.lastSeq && links.length < MAX_LINKS; seq++) {
          const l = linkTo(decodeMeta(recordOf(run, seq).meta).attributes);
          if (l !== undefined) links.push(l);
        }
      }
      const span = tracer.startSpan(
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
            [ATTR.batchCount]: count,
            [ATTR.firstSeq]: runs[0]?.firstSeq ?? 0,
            [ATTR.lastSeq]: runs[runs.length - 1]?.lastSeq ?? 0,
            [ATTR.dbSystem]: storeKind,
          },
        },
        ROOT_CONTEXT,
      );
      span.end(startedAt + durationMs);
    },

    storeError(operation) {
      metrics.storeErrors.add(1, { operation });
    },

    storeRead(_topic, rows, durationMs) {
      metrics.storeBatchRows.record(rows, { operation: "read" });
      metrics.storeSeconds.record(durationMs / 1000, { operation: "read" });
    },

    delivered(topic, subscription, deliveries) {
      const attrs = { topic, subscription };
      const now = Date.now();
      let redelivered = 0;
      let count = 0;
      for (const d of deliveries) count += "run" in d ? d.to - d.from : 1;
      // End-to-end latency from at most 8 first deliveries per batch, evenly spread over its
      // messages (inside spans of stored records too): each recording sorts and hashes the
      // attributes (~1.5 KB of garbage), and at 10k msg/s in batches of 50 recording every
      // message made a fifth of the broker's garbage.
      const step = Math.max(1, Math.ceil(count / 8));
      let n = 0;
      for (const d of deliveries) {
        if ("run" in d) {
          // The first position of this span that falls on the sampling grid.
          for (let k = d.from + ((step - (n % step)) % step); k < d.to; k += step)
            metrics.endToEndSeconds.record(Math.max(0, now - recordTime(d.run, k)) / 1000, attrs);
          n += d.to - d.from;
          continue;
        }
        if (d.attempt > 1) redelivered++;
        else if (n % step === 0)
          metrics.endToEndSeconds.record(Math.max(0, now - d.message.publishTime) / 1000, attrs);
        n++;
      }
      metrics.delivered.add(count, attrs);
      if (redelivered > 0) metrics.redeliveries.add(redelivered, attrs);
      if (tracer === undefined) return;
      // With tracing on every delivery is a message (spans of records are not made then).
      for (const d of deliveries) {
        if ("run" in d) continue;
        messageSpan(`deliver ${topic}`, SpanKind.PRODUCER, d.message.attributes, {
          ...consumerSide(topic, subscription),
          // The broker's side of the consumer's receive.
          [ATTR.operationType]: "receive",
          [ATTR.operationName]: "deliver",
          ...(d.message.messageId === "" ? {} : { [ATTR.messageId]: d.message.messageId }),
          [ATTR.seq]: d.message.seq,
          [ATTR.deliveryAttempt]: d.attempt,
          [ATTR.bodySize]: d.message.data.byteLength,
        });
      }
    },

    settled(topic, subscription, outcome, count, messages) {
      if (count === 0) return;
      metrics.settled.add(count, { topic, subscription, outcome });
      if (outcome === "dead_letter") metrics.deadLetters.add(count, { topic, subscription });
      if (tracer === undefined) return;
      for (const m of messages) {
        if (m.traceparent === undefined) continue;
        messageSpan(
          `settle ${topic}`,
          SpanKind.SERVER,
          { traceparent: m.traceparent },
          {
            ...consumerSide(topic, subscription),
            [ATTR.operationType]: "settle",
            [ATTR.operationName]: "settle",
            [ATTR.settlement]: outcome,
            [ATTR.seq]: m.seq,
          },
        );
      }
    },
  };
}
