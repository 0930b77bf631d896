import assert from "node:assert/strict";
import { test } from "node:test";
import { TestClient } from "../support/broker.js";
import { spawnBroker } from "../support/process.js";

/**
 * kill -9 the broker while publishers run; restart it on the same store. Every confirmed message
 * must be there, intact, and new seqs must continue without a gap.
 */
export function crashSuite(kind: string, fresh: (name: string) => Promise<string>): void {
  test(`${kind}: kill -9 during publishing loses no confirmed message and leaves no gap`, async () => {
    const store = await fresh(`${kind}_crash`);
    const first = await spawnBroker(["--store", store]);
    const client = new TestClient(first.address);
    const confirmed = new Map<number, string>();
    let stop = false;
    let failures = 0;
    const publishers = Array.from({ length: 6 }, async (_, p) => {
      for (let i = 0; !stop; i++) {
        const texts = Array.from({ length: 200 }, (_, j) => `p${p}-pack${i}-m${j}`);
        try {
          const res = await client.publish("crash", texts, 5000);
          for (let j = 0; j < texts.length; j++) confirmed.set(Number(res.firstSeq) + j, texts[j]!);
        } catch {
          failures++; // expected once the broker is gone: outcome unknown, not confirmed
          return;
        }
      }
    });
    // Let the publishers get going, then crash the broker mid-flight.
    while (confirmed.size < 20_000) await new Promise((r) => setTimeout(r, 20));
    first.child.kill("SIGKILL");
    await first.exited;
    stop = true;
    await Promise.all(publishers);
    client.close();
    assert.ok(failures > 0, "some packs were in flight when the broker died");

    const second = await spawnBroker(["--store", store]);
    const after = new TestClient(second.address);
    try {
      const stream = after.receive("crash", "verify", { from: "earliest", maxMessages: 20_000 });
      const maxConfirmed = Math.max(...confirmed.keys());
      let acked = 0;
      await stream.until(() => {
        stream.ack(stream.deliveries.slice(acked).map((d) => d.seq));
        acked = stream.deliveries.length;
        const last = stream.deliveries[acked - 1];
        return last !== undefined && Number(last.seq) >= maxConfirmed;
      }, 60_000);
      const subscribed = stream.responses.find((r) => r.subscribed)!.subscribed!;
      const recovered = Number(subscribed.lastSeq);
      assert.ok(
        recovered >= maxConfirmed,
        `recovered watermark ${recovered} covers every confirmed seq (max ${maxConfirmed})`,
      );
      const bySeq = new Map(stream.deliveries.map((d) => [Number(d.seq), Buffer.from(d.data).toString()]));
      for (const [seq, text] of confirmed)
        assert.equal(bySeq.get(seq), text, `confirmed seq ${seq} is intact`);
      for (let i = 0; i < stream.deliveries.length; i++) {
        assert.equal(Number(stream.deliveries[i]!.seq), i + 1, "the log has no gap");
      }
      const next = await after.publish("crash", ["after-restart"]);
      assert.equal(Number(next.firstSeq), recovered + 1, "new seqs continue right after the recovered log");
      await stream.end();
    } finally {
      after.close();
      second.child.kill("SIGTERM");
      assert.equal(await second.exited, 0, "graceful shutdown exits 0");
    }
  });
}
