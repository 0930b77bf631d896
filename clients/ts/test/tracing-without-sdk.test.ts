import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { NerveBusClient, traceContext } from "@nervebus/client";
import { propagation, trace } from "@opentelemetry/api";
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { TestBroker } from "./support/broker.js";
import { eventually, uniqueName } from "./support/helpers.js";

// Its own process (node --test runs each file in one): no tracer provider is registered until
// the last test registers one, after the client has published and received without it.

let broker: TestBroker;
let client: NerveBusClient;

before(async () => {
  propagation.disable();
  broker = await TestBroker.start();
  client = new NerveBusClient(broker.address);
});

after(async () => {
  await client.close();
  await broker.dispose();
});

const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT = `00-${TRACE_ID}-00f067aa0ba902b7-01`;

test("without an SDK a message keeps the trace its traceparent names, and its handler runs in that trace", async () => {
  const topic = uniqueName("no-sdk");
  const result = await client.publish(topic, { data: "x", attributes: { traceparent: TRACEPARENT } });
  assert.equal(result.traceId, TRACE_ID);
  const untraced = await client.publish(topic, { data: "y" });
  assert.match(untraced.traceId, /^[0-9a-f]{32}$/, "the broker starts a trace for a message without one");
  assert.notEqual(untraced.traceId, TRACE_ID);
  for await (const msg of client.messages(topic, uniqueName("sub"), { start: "earliest" })) {
    assert.equal(msg.attributes.traceparent, TRACEPARENT);
    const ctx = traceContext(msg);
    assert.ok(ctx, "the iterator form gives each message a context");
    assert.equal(trace.getSpanContext(ctx)?.traceId, TRACE_ID);
    msg.ack();
    break;
  }
});

test("a tracer provider registered after the client has worked without one records its next spans", async () => {
  const topic = uniqueName("late-sdk");
  await client.publish(topic, { data: "before" });
  const exporter = new InMemorySpanExporter();
  new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }).register();
  const result = await client.publish(topic, { data: "after" });
  const producer = await eventually(() =>
    exporter.getFinishedSpans().find((s) => s.name === `publish ${topic}`),
  );
  assert.equal(
    producer.spanContext().traceId,
    result.traceId,
    "the message carries the producer span's trace",
  );
  const sub = client.subscribe(topic, uniqueName("sub"), () => undefined, { start: "earliest" });
  const consumers = await eventually(() => {
    const found = exporter.getFinishedSpans().filter((s) => s.name === `process ${topic}`);
    return found.length === 2 ? found : undefined;
  });
  await sub.close();
  assert.ok(consumers.some((s) => s.spanContext().traceId === result.traceId));
});
