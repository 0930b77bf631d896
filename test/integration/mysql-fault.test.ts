import assert from "node:assert/strict";
import { test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import {
  healthClient,
  seqsOf,
  startBroker,
  healthStatus as statusOf,
  TestClient,
} from "../support/broker.js";
import { useTestMysql } from "../support/mariadb.js";

const testMysql = useTestMysql();

test("mysql: while the database hangs, SendPack fails with UNAVAILABLE (never OK); writes resume after, with no gap", async (t) => {
  const mysql = testMysql();
  if (!mysql.pause || !mysql.resume) {
    t.skip("NERVEBUS_TEST_MYSQL_URL points at a server this test cannot freeze");
    return;
  }
  const url = await mysql.database("fault_hang");
  const bus = await startBroker(url, { confirmTimeoutMs: 1500, healthIntervalMs: 200 });
  const client = new TestClient(bus.address);
  const health = healthClient(bus.address);
  const healthStatus = () => statusOf(health);
  try {
    const before = await client.publish("hang", ["a", "b"]);
    assert.equal(before.lastSeq, 2n);
    mysql.pause();
    let resumed = false;
    try {
      await assert.rejects(client.publish("hang", ["c"], 10_000), (err: grpc.ServiceError) => {
        assert.equal(err.code, grpc.status.UNAVAILABLE, err.details);
        assert.match(err.details, /pack not durable before its deadline; outcome unknown/);
        return true;
      });
      // The health check notices the store is gone.
      let status = await healthStatus();
      for (let i = 0; i < 50 && status !== "NOT_SERVING"; i++) {
        await new Promise((r) => setTimeout(r, 100));
        status = await healthStatus();
      }
      assert.equal(status, "NOT_SERVING", "health is NOT_SERVING while the store does not answer");
      mysql.resume();
      resumed = true;
      const later = await client.publish("hang", ["d"], 30_000);
      assert.equal(
        later.lastSeq,
        4n,
        "the unconfirmed pack kept its seq and was written once the store came back",
      );
      const s = client.receive("hang", "check", { from: "earliest" });
      await s.until(() => s.deliveries.length >= 4);
      assert.deepEqual(seqsOf(s.deliveries), [1, 2, 3, 4]);
      assert.deepEqual(
        s.deliveries.map((d) => Buffer.from(d.data).toString()),
        ["a", "b", "c", "d"],
      );
      await s.end();
    } finally {
      if (!resumed) mysql.resume();
    }
  } finally {
    health.close();
    client.close();
    await bus.stop();
  }
});

test("mysql: a SendPack still waiting for the hung database when the broker shuts down gets UNAVAILABLE once the grace is over", async (t) => {
  const mysql = testMysql();
  if (!mysql.pause || !mysql.resume) {
    t.skip("NERVEBUS_TEST_MYSQL_URL points at a server this test cannot freeze");
    return;
  }
  const url = await mysql.database("fault_shutdown");
  const bus = await startBroker(url, { confirmTimeoutMs: 60_000, shutdownGraceMs: 500 });
  const client = new TestClient(bus.address);
  let stopping: Promise<void> | undefined;
  try {
    await client.publish("hang", ["a"]);
    mysql.pause();
    try {
      const waiting = client.publish("hang", ["b"], 60_000);
      // The pack is in the broker, waiting for the store, when the shutdown begins.
      while (bus.broker.bufferedBytes === 0) await new Promise((r) => setTimeout(r, 10));
      stopping = bus.stop();
      await assert.rejects(waiting, (err: grpc.ServiceError) => {
        assert.equal(err.code, grpc.status.UNAVAILABLE, err.details);
        assert.match(err.details, /outcome unknown/);
        return true;
      });
    } finally {
      mysql.resume();
    }
    await stopping;
  } finally {
    client.close();
    await (stopping ?? bus.stop());
  }
});
