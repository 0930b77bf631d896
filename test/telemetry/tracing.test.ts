import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { test } from "node:test";
import { context, propagation, ROOT_CONTEXT, SpanKind, trace } from "@opentelemetry/api";
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { loadConfig } from "../../src/config/index.js";
import { startNerveBus } from "../../src/nervebus.js";
import { jsonLogger } from "../../src/telemetry/index.js";
import { TestClient } from "../support/broker.js";

/** Captures the JSON log lines a logger writes. */
function capture(): { stream: NodeJS.WritableStream; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  return {
    stream,
    lines: () =>
      chunks
        .join("")
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("one message's producer span, the broker's publish/persist/deliver/settle spans and the consumer's span share one trace", async () => {
  const exporter = new InMemorySpanExporter();
  const dir = mkdtempSync(join(tmpdir(), "nb-trace-"));
  const config = { ...loadConfig({}, {}), listen: "127.0.0.1:0", store: `sqlite:${join(dir, "nb.db")}` };
  const logs = capture();
  const bus = await startNerveBus(config, jsonLogger("debug", logs.stream), {
    spanProcessor: new SimpleSpanProcessor(exporter),
    env: {},
  });
  const client = new TestClient(bus.address);
  try {
    assert.ok(bus.telemetry.tracer, "tracing is on when a span processor is given");
    const tracer = trace.getTracer("test-producer");
    // Producer: a PRODUCER span whose context travels in the message attributes.
    const producer = tracer.startSpan("orders publish", { kind: SpanKind.PRODUCER });
    const attributes: Record<string, string> = { k: "v" };
    propagation.inject(trace.setSpan(ROOT_CONTEXT, producer), attributes);
    const res = await client.publish("orders", [{ data: Buffer.from("traced"), attributes }]);
    producer.end();
    const traceId = producer.spanContext().traceId;
    assert.equal(res.results[0]!.traceId, traceId, "SendPack returns the message's trace id");

    // Consumer: receives, starts its span as a child of the message's context, acks.
    const s = client.receive("orders", "billing", { from: "earliest", confirmAcks: true });
    await s.until(() => s.deliveries.length >= 1);
    const d = s.deliveries[0]!;
    assert.equal(d.traceId, traceId, "the delivery carries the trace id");
    const parent = propagation.extract(ROOT_CONTEXT, d.attributes);
    const consumer = tracer.startSpan("orders process", { kind: SpanKind.CONSUMER }, parent);
    context.with(trace.setSpan(parent, consumer), () => s.ack([d.seq]));
    consumer.end();
    await s.until(() => s.responses.some((r) => r.ackResults !== undefined));
    await s.end();
    await sleep(100);

    const spans = exporter.getFinishedSpans();
    const byName = (prefix: string) => spans.filter((x) => x.name.startsWith(prefix));
    const one = (prefix: string): ReadableSpan => {
      const found = byName(prefix);
      assert.equal(found.length, 1, `one ${prefix} span, got ${spans.map((x) => x.name).join(", ")}`);
      return found[0]!;
    };
    const producerId = producer.spanContext().spanId;
    const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;

    const publish = one("publish orders");
    assert.equal(publish.spanContext().traceId, traceId);
    assert.equal(parentOf(publish), producerId, "the broker's publish span is a child of the producer span");
    assert.equal(publish.kind, SpanKind.SERVER);
    assert.equal(publish.attributes["messaging.system"], "nervebus");
    assert.equal(publish.attributes["messaging.destination.name"], "orders");
    assert.equal(publish.attributes["messaging.nervebus.first_seq"], 1);

    const persist = one("persist orders");
    assert.ok(
      persist.links.some((l) => l.context.traceId === traceId && l.context.spanId === producerId),
      "the persist span of the shard batch links to the message's context",
    );
    assert.equal(persist.attributes["messaging.batch.message_count"], 1);

    const deliver = one("deliver orders");
    assert.equal(deliver.spanContext().traceId, traceId);
    assert.equal(parentOf(deliver), producerId);
    assert.equal(deliver.attributes["messaging.consumer.group.name"], "billing");
    assert.equal(deliver.attributes["messaging.nervebus.message.delivery_attempt"], 1);
    assert.equal(deliver.attributes["messaging.nervebus.message.seq"], 1);

    const settle = one("settle orders");
    assert.equal(settle.spanContext().traceId, traceId);
    assert.equal(parentOf(settle), producerId);
    assert.equal(settle.attributes["messaging.nervebus.settlement"], "ack");
    assert.equal(settle.attributes["messaging.nervebus.message.seq"], 1);

    const consumed = spans.find((x) => x.name === "orders process")!;
    assert.equal(consumed.spanContext().traceId, traceId, "the consumer's span is in the same trace");
    assert.equal(parentOf(consumed), producerId);

    // Logs: JSON lines with level; trace ids when a span is active; never a payload.
    const log = jsonLogger("info", logs.stream);
    context.with(trace.setSpan(ROOT_CONTEXT, producer), () =>
      log("warn", "inside a span", { topic: "orders" }),
    );
    const lines = logs.lines();
    assert.ok(lines.some((l) => l.msg === "topic created" && l.level === "info" && l.topic === "orders"));
    const inside = lines.find((l) => l.msg === "inside a span")!;
    assert.equal(inside.level, "warn");
    assert.equal(inside.trace_id, traceId);
    assert.equal(
      lines.some((l) => JSON.stringify(l).includes("traced")),
      false,
      "payloads are never logged",
    );
  } finally {
    client.close();
    await bus.stop();
  }
});
