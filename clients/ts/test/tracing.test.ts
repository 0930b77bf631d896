import assert from "node:assert/strict";
import { after, before, beforeEach, test } from "node:test";
import { NerveBusClient, SpanAttributes, TRACER_NAME, traceContext } from "@nervebus/client";
import { context, propagation, SpanKind, trace } from "@opentelemetry/api";
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { TestBroker } from "./support/broker.js";
import { deferred, eventually, uniqueName } from "./support/helpers.js";

const exporter = new InMemorySpanExporter();
let broker: TestBroker;
let client: NerveBusClient;

before(async () => {
  // The one setup call the README documents (it registers the provider and the context manager).
  new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }).register();
  // The client writes and reads W3C trace context itself: no global propagator is needed.
  propagation.disable();
  broker = await TestBroker.start();
  client = new NerveBusClient(broker.address);
});

beforeEach(() => exporter.reset());

after(async () => {
  await client.close();
  await broker.dispose();
});

function spanNamed(name: string): ReadableSpan {
  const span = exporter.getFinishedSpans().find((s) => s.name === name);
  assert.ok(span, `no span ${name} among ${exporter.getFinishedSpans().map((s) => s.name)}`);
  return span;
}

test("producer and consumer spans share one trace; the consumer span is the producer span's child", async () => {
  const topic = uniqueName("traced");
  const subName = uniqueName("sub");
  const tracer = trace.getTracer("test");
  const handled = deferred<{ activeSpanId: string | undefined; traceId: string }>();

  const result = await tracer.startActiveSpan("request", async (request) => {
    try {
      return await client.publish(topic, { data: "traced", attributes: { keep: "me" } });
    } finally {
      request.end();
    }
  });
  const sub = client.subscribe(
    topic,
    subName,
    (m) => {
      // Work done in the handler is part of the consumer span.
      tracer.startSpan("work").end();
      handled.resolve({ activeSpanId: trace.getActiveSpan()?.spanContext().spanId, traceId: m.traceId });
    },
    { start: "earliest" },
  );
  const { activeSpanId, traceId } = await handled.promise;
  await sub.close();

  const request = spanNamed("request");
  const producer = spanNamed(`publish ${topic}`);
  const consumer = spanNamed(`process ${topic}`);
  const work = spanNamed("work");
  const traceIdOf = (s: ReadableSpan) => s.spanContext().traceId;

  assert.equal(traceIdOf(producer), traceIdOf(request));
  assert.equal(traceIdOf(consumer), traceIdOf(producer), "one trace id end to end");
  assert.equal(result.traceId, traceIdOf(producer), "the broker kept the injected trace context");
  assert.equal(traceId, traceIdOf(producer));
  assert.equal(producer.parentSpanContext?.spanId, request.spanContext().spanId);
  assert.equal(
    consumer.parentSpanContext?.spanId,
    producer.spanContext().spanId,
    "consumer is the producer's child",
  );
  assert.equal(activeSpanId, consumer.spanContext().spanId, "the handler runs in the consumer span");
  assert.equal(work.parentSpanContext?.spanId, consumer.spanContext().spanId);

  assert.equal(producer.kind, SpanKind.PRODUCER);
  assert.equal(consumer.kind, SpanKind.CONSUMER);
  assert.equal(producer.instrumentationScope.name, TRACER_NAME);
  assert.equal(producer.attributes[SpanAttributes.SYSTEM], "nervebus");
  assert.equal(producer.attributes[SpanAttributes.DESTINATION], topic);
  assert.equal(producer.attributes[SpanAttributes.OPERATION_TYPE], "send");
  assert.equal(producer.attributes[SpanAttributes.MESSAGE_ID], result.messageId);
  assert.equal(producer.attributes[SpanAttributes.SEQ], result.seq);
  assert.equal(producer.attributes["messaging.nervebus.publish.outcome"], "appended");
  assert.equal(producer.attributes["server.address"], "127.0.0.1");
  assert.equal(consumer.attributes[SpanAttributes.SYSTEM], "nervebus");
  assert.equal(consumer.attributes[SpanAttributes.DESTINATION], topic);
  assert.equal(consumer.attributes[SpanAttributes.SUBSCRIPTION], subName);
  assert.equal(consumer.attributes[SpanAttributes.OPERATION_TYPE], "process");
  assert.equal(consumer.attributes["messaging.nervebus.message.delivery_attempt"], 1);
  assert.equal(consumer.attributes["messaging.nervebus.message.seq"], result.seq);
  assert.equal(consumer.attributes["messaging.nervebus.settlement"], "ack");
});

test("a failing handler's span records the error; the iterator form exposes the span context", async () => {
  const topic = uniqueName("traced-iter");
  await client.publish(topic, { data: "a" });
  const failed = deferred();
  const sub = client.subscribe(
    topic,
    uniqueName("sub"),
    (m) => {
      if (m.attempt === 1) {
        failed.resolve();
        throw new Error("boom");
      }
    },
    { start: "earliest", nackDelayMs: 10_000 },
  );
  await failed.promise;
  await sub.close();
  const errored = spanNamed(`process ${topic}`);
  assert.equal(errored.status.code, 2 /* ERROR */);
  assert.equal(errored.events[0]?.name, "exception");
  const producerTraceId = spanNamed(`publish ${topic}`).spanContext().traceId;

  exporter.reset();
  for await (const msg of client.messages(topic, uniqueName("sub"), { start: "earliest" })) {
    const ctx = traceContext(msg);
    assert.ok(ctx);
    context.with(ctx, () => trace.getTracer("test").startSpan("iter-work").end());
    msg.ack();
    break;
  }
  const consumer = await eventually(() =>
    exporter.getFinishedSpans().find((s) => s.name === `process ${topic}`),
  );
  assert.equal(consumer.spanContext().traceId, producerTraceId);
  assert.equal(spanNamed("iter-work").parentSpanContext?.spanId, consumer.spanContext().spanId);
  assert.equal(consumer.attributes[SpanAttributes.SETTLEMENT], "ack");
});

test("tracing: false records no spans and injects nothing", async () => {
  const topic = uniqueName("untraced");
  const publisher = client.publisher({ tracing: false });
  const result = await trace.getTracer("test").startActiveSpan("outer", async (outer) => {
    try {
      return await publisher.publish(topic, { data: "x" });
    } finally {
      outer.end();
    }
  });
  const outer = spanNamed("outer");
  assert.notEqual(result.traceId, outer.spanContext().traceId, "the broker made its own trace id");
  assert.equal(
    exporter.getFinishedSpans().filter((s) => s.name.includes(topic)).length,
    0,
    "no producer span",
  );
  await publisher.close();
});
