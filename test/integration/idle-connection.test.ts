import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { startBroker, TestClient } from "../support/broker.js";

test("a connection with no call in progress is closed after --max-connection-idle-ms, one with an open stream is kept", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nb-idle-"));
  const bus = await startBroker(`sqlite:${join(dir, "db")}`, { maxConnectionIdleMs: 1000 });
  // Own connections (grpc-js shares one per target otherwise): the publisher channel of `idle`
  // and the subscriber channel of `busy` are what is looked at.
  const own = { "grpc.use_local_subchannel_pool": 1 };
  const idle = new TestClient(bus.address, own);
  const busy = new TestClient(bus.address, own);
  try {
    await idle.publish("t", ["a"]);
    await busy.publish("t", ["b"]);
    const s = busy.receive("t", "s");
    await s.until(() => s.deliveries.length >= 2);
    const state = (c: grpc.Client) => c.getChannel().getConnectivityState(false);
    assert.equal(state(idle.publisher), grpc.connectivityState.READY);
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal(
      state(idle.publisher),
      grpc.connectivityState.IDLE,
      "the idle connection was closed by the broker",
    );
    assert.equal(s.ended, false, "a connection with a stream open is not idle");
    assert.equal(state(busy.subscriber), grpc.connectivityState.READY);
    // A closed idle connection costs the client nothing but a reconnect.
    assert.equal(Number((await idle.publish("t", ["c"])).firstSeq), 3);
    await s.end();
  } finally {
    idle.close();
    busy.close();
    await bus.stop();
  }
});
