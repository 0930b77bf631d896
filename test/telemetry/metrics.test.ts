import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { startBroker, TestClient } from "../support/broker.js";

/** Parses the Prometheus text exposition into {name{labels}: value}. */
function parse(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    assert.ok(m, `malformed exposition line: ${line}`);
    out.set(`${m[1]}${m[2] ?? ""}`, Number(m[3]));
  }
  return out;
}

function find(metrics: Map<string, number>, name: string, ...labels: string[]): number | undefined {
  for (const [k, v] of metrics) {
    if (!k.startsWith(`${name}{`) && k !== name) continue;
    if (labels.every((l) => k.includes(l))) return v;
  }
  return undefined;
}

test("/metrics exposes publish, latency, backlog, delivery and store figures in Prometheus format", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nb-metrics-"));
  const bus = await startBroker(`sqlite:${join(dir, "nb.db")}`);
  const client = new TestClient(bus.address);
  try {
    await client.publish(
      "m",
      Array.from({ length: 10 }, (_, i) => `payload-${i}`),
    );
    const s = client.receive("m", "sub", { from: "earliest", maxMessages: 4 });
    await s.until(() => s.deliveries.length >= 4);
    s.ack([1n, 2n]);
    await s.until(() => s.deliveries.length >= 6);
    const res = await fetch(`http://${bus.httpAddress}/metrics`);
    assert.equal(res.status, 200);
    const metrics = parse(await res.text());
    assert.equal(find(metrics, "nervebus_messages_published_total", 'topic="m"'), 10);
    assert.equal(find(metrics, "nervebus_published_bytes_total", 'topic="m"'), 10 * "payload-0".length);
    assert.equal(find(metrics, "nervebus_publish_confirm_seconds_count", 'topic="m"'), 1);
    assert.equal(find(metrics, "nervebus_end_to_end_seconds_count", 'topic="m"', 'subscription="sub"'), 6);
    assert.equal(find(metrics, "nervebus_messages_delivered_total", 'subscription="sub"'), 6);
    assert.equal(find(metrics, "nervebus_messages_settled_total", 'outcome="ack"'), 2);
    assert.equal(find(metrics, "nervebus_subscription_backlog", 'subscription="sub"'), 8);
    assert.equal(find(metrics, "nervebus_subscription_in_flight", 'subscription="sub"'), 4);
    assert.equal(find(metrics, "nervebus_subscription_consumers", 'subscription="sub"'), 1);
    assert.equal(find(metrics, "nervebus_open_streams"), 1);
    assert.ok((find(metrics, "nervebus_store_batch_rows_count", 'operation="insert"') ?? 0) >= 1);
    assert.ok((find(metrics, "nervebus_store_seconds_sum", 'operation="insert"') ?? 0) > 0);
    assert.equal(find(metrics, "nervebus_write_buffer_bytes"), 0);
    assert.equal(find(metrics, "nervebus_store_owner_valid"), 1, "this broker owns its store");
    assert.equal(find(metrics, "nervebus_store_owner_epoch"), 0, "SQLite: a file lock, no epoch");
    const health = await fetch(`http://${bus.httpAddress}/healthz`);
    assert.equal(health.status, 200);
    const status = (await (await fetch(`http://${bus.httpAddress}/api/status`)).json()) as {
      topics: { name: string; subscriptions: { name: string; backlog: number }[] }[];
    };
    assert.deepEqual(
      status.topics.map((t) => [t.name, t.subscriptions.map((x) => [x.name, x.backlog])]),
      [["m", [["sub", 8]]]],
    );
    await s.end();
  } finally {
    client.close();
    await bus.stop();
  }
});

test("/metrics shows how long the event loop was held: a 150 ms block is one delay over 0.1 s", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nb-loop-"));
  const bus = await startBroker(`sqlite:${join(dir, "nb.db")}`);
  const scrape = async () => parse(await (await fetch(`http://${bus.httpAddress}/metrics`)).text());
  const over100ms = (m: Map<string, number>) =>
    (find(m, "nervebus_event_loop_delay_seconds_count") ?? 0) -
    (find(m, "nervebus_event_loop_delay_seconds_bucket", 'le="0.1"') ?? 0);
  try {
    await new Promise((r) => setTimeout(r, 100));
    const before = await scrape();
    assert.ok((find(before, "nervebus_event_loop_delay_seconds_count") ?? 0) >= 2, "sampled while idle");
    // The broker runs in this process: holding this thread holds its event loop.
    const until = performance.now() + 150;
    while (performance.now() < until) {
      // busy
    }
    await new Promise((r) => setTimeout(r, 60));
    const after = await scrape();
    // One sample of at least 0.13 s (150 ms less one tick); a busy test machine may add another.
    const added = over100ms(after) - over100ms(before);
    assert.ok(added >= 1 && added <= 2, `samples over 0.1 s added by the block: ${added}`);
    const sum = (m: Map<string, number>) => find(m, "nervebus_event_loop_delay_seconds_sum") ?? 0;
    assert.ok(sum(after) - sum(before) >= 0.13, `delay added: ${sum(after) - sum(before)} s`);
  } finally {
    await bus.stop();
  }
});
