import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { startBroker, TestClient } from "../support/broker.js";

test("--max-concurrent-streams: calls beyond the limit wait on the client until a stream frees", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nb-streams-"));
  const broker = await startBroker(`sqlite:${join(dir, "s.db")}`, { maxConcurrentStreams: 1 });
  // One client: its services share one HTTP/2 connection (grpc-js pools the subchannel).
  const client = new TestClient(broker.address);
  try {
    await client.publish("t", ["before"]);
    const stream = client.receive("t", "s", { from: "earliest" });
    await stream.until(() => stream.deliveries.length === 1);
    // The Receive stream holds the connection's only stream: the SendPack cannot start.
    await assert.rejects(client.publish("t", ["blocked"], 1000), (err: { code?: number }) => {
      assert.equal(err.code, 4, "DEADLINE_EXCEEDED: the call waited on the client side");
      return true;
    });
    stream.ack([1]);
    await stream.end();
    const after = await client.publish("t", ["after"]);
    assert.ok(Number(after.firstSeq) >= 2, "with the stream gone, calls go through again");
  } finally {
    client.close();
    await broker.stop();
  }
});
