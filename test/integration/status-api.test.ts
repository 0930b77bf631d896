import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { startBroker, TestClient } from "../support/broker.js";

test("/api/status answers one page of topics with the total, and who owns the store", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nb-status-"));
  const bus = await startBroker(`sqlite:${join(dir, "db")}`);
  const client = new TestClient(bus.address);
  try {
    for (const t of ["a", "b", "c", "d", "e"]) await client.publish(t, ["x"]);
    const get = async (query: string) => {
      const res = await fetch(`http://${bus.httpAddress}/api/status${query}`);
      assert.equal(res.status, 200);
      return (await res.json()) as {
        topicCount: number;
        offset: number;
        topics: { name: string }[];
        broker: { ownership: { mechanism: string; valid: boolean } };
      };
    };
    const page = await get("?offset=1&limit=2");
    assert.equal(page.topicCount, 5);
    assert.deepEqual(
      page.topics.map((t) => t.name),
      ["b", "c"],
    );
    const all = await get("");
    assert.equal(all.topics.length, 5, "the default page holds up to 200 topics");
    assert.equal(all.broker.ownership.mechanism, "file-lock");
    assert.equal(all.broker.ownership.valid, true);
    const bad = await get("?offset=-3&limit=x");
    assert.equal(bad.offset, 0, "malformed paging falls back to the defaults");
    assert.equal(bad.topics.length, 5);
  } finally {
    client.close();
    await bus.stop();
  }
});
