import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type * as grpc from "@grpc/grpc-js";
import type { NerveBus } from "../../src/nervebus.js";
import { startBroker, TestClient, type TestStream } from "../support/broker.js";

/**
 * Per-principal shares of connections and streams (issue 12). Authentication is off here, so
 * the client address (127.0.0.1 for every client of the test) stands in for the principal, as
 * the publish quotas count; security.test.ts covers principals from tokens.
 */
let bus: NerveBus;
/** Each TestClient on connections of its own. */
const OWN_CONNECTION = { "grpc.use_local_subchannel_pool": 1 };

before(async () => {
  const dir = mkdtempSync(join(tmpdir(), "nb-principal-limits-"));
  bus = await startBroker(`sqlite:${join(dir, "db")}`, {
    maxConnectionsPerPrincipal: 2,
    maxStreamsPerPrincipal: 3,
  });
});

after(async () => {
  await bus.stop();
});

async function subscribed(s: TestStream): Promise<void> {
  await s.until(() => s.responses.some((r) => r.subscribed !== undefined) || s.ended, 20_000, "subscribed");
}

test("one principal may open --max-streams-per-principal streams; one more is RESOURCE_EXHAUSTED until one ends", async () => {
  const client = new TestClient(bus.address, OWN_CONNECTION);
  try {
    const open = ["a", "b", "c"].map((n) => client.receive("streams", n));
    for (const s of open) await subscribed(s);
    assert.ok(open.every((s) => !s.ended));
    const extra = client.receive("streams", "d");
    await extra.until(() => extra.ended, 20_000, "refusal");
    assert.equal(
      extra.error?.code,
      8,
      `RESOURCE_EXHAUSTED, got ${extra.error?.code} ${extra.error?.details}`,
    );
    assert.match(
      extra.error!.details,
      /client 127\.0\.0\.1 has 3 Receive and Publish streams open .*--max-streams-per-principal/,
    );
    // The open streams are not cut; once one ends there is room again.
    await open[0]!.end();
    const again = client.receive("streams", "d");
    await subscribed(again);
    assert.equal(again.ended, false);
    for (const s of [open[1]!, open[2]!, again]) await s.end();
  } finally {
    client.close();
  }
});

test("one principal may have calls on --max-connections-per-principal connections; a call on one more is RESOURCE_EXHAUSTED", async () => {
  const a = new TestClient(bus.address, OWN_CONNECTION);
  const b = new TestClient(bus.address, OWN_CONNECTION);
  const c = new TestClient(bus.address, OWN_CONNECTION);
  try {
    // Two connections with a call in progress each (a stream keeps its call going).
    const sa = a.receive("conns", "a");
    const sb = b.receive("conns", "b");
    await subscribed(sa);
    await subscribed(sb);
    const refused = await c.publish("conns", ["x"]).then(
      () => undefined,
      (err: grpc.ServiceError) => err,
    );
    assert.equal(refused?.code, 8, `RESOURCE_EXHAUSTED, got ${refused?.code} ${refused?.details}`);
    assert.match(refused!.details, /calls in progress on 2 connections .*--max-connections-per-principal/);
    assert.ok(
      Number(refused!.metadata.get("nervebus-retry-after-ms")[0]) > 0,
      "a retry delay in the trailer",
    );
    // A call on a connection that already has one is not a new connection.
    const sa2 = a.receive("conns", "a2");
    await subscribed(sa2);
    assert.equal(sa2.ended, false);
    await sa.end();
    await sa2.end();
    const ok = await c.publish("conns", ["x"]);
    assert.ok(Number(ok.firstSeq) >= 1);
    await sb.end();
  } finally {
    a.close();
    b.close();
    c.close();
  }
});

test("topics and subscriptions per principal: those made before a lower limit count and stay; new ones wait until some are deleted", async () => {
  const store = `sqlite:${join(mkdtempSync(join(tmpdir(), "nb-principal-catalog-")), "db")}`;
  const first = await startBroker(store);
  const c1 = new TestClient(first.address);
  try {
    for (const t of ["t1", "t2", "t3"]) await c1.publish(t, ["m"]);
    for (const s of ["s1", "s2", "s3"]) {
      const st = c1.receive("t1", s);
      await subscribed(st);
      await st.end();
    }
  } finally {
    c1.close();
    await first.stop();
  }
  const limited = await startBroker(store, { maxTopicsPerPrincipal: 2, maxSubscriptionsPerPrincipal: 2 });
  const c = new TestClient(limited.address);
  try {
    // Made before the limit: still there and usable.
    for (const t of ["t1", "t2", "t3"]) await c.publish(t, ["again"]);
    const old = c.receive("t1", "s3");
    await subscribed(old);
    assert.equal(old.ended, false);
    await old.end();
    // Counted: nothing new until the principal is under the limit.
    const refusedTopic = await c.publish("t4", ["x"]).then(
      () => undefined,
      (err: grpc.ServiceError) => err,
    );
    assert.equal(refusedTopic?.code, 8);
    assert.match(refusedTopic!.details, /client 127\.0\.0\.1 has made 3 topics.*--max-topics-per-principal/);
    const refusedSub = c.receive("t1", "s4");
    await refusedSub.until(() => refusedSub.ended, 20_000, "refusal");
    assert.equal(refusedSub.error?.code, 8);
    assert.match(refusedSub.error!.details, /has made 3 subscriptions.*--max-subscriptions-per-principal/);
    await c.adminCall("deleteTopic", { name: "t3" });
    await c.adminCall("deleteTopic", { name: "t2" });
    await c.adminCall("deleteSubscription", { topic: "t1", name: "s3" });
    await c.adminCall("deleteSubscription", { topic: "t1", name: "s2" });
    assert.ok(Number((await c.publish("t4", ["x"])).firstSeq) >= 1);
    const fresh = c.receive("t1", "s4");
    await subscribed(fresh);
    assert.equal(fresh.ended, false);
    await fresh.end();
  } finally {
    c.close();
    await limited.stop();
  }
});
