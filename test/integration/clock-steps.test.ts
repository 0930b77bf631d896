import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import type { Delivery } from "../../clients/ts/src/gen/nervebus/v1/message_pb.js";
import { MessageResult_Outcome } from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import { TestClient } from "../support/broker.js";
import { type BrokerProcess, spawnBroker } from "../support/process.js";

/**
 * The broker's wall clock steps (NTP stepping it, a VM resumed on another host) while messages
 * are leased, delayed and published: what is timed must keep its time, and publish times must
 * keep the log's order, which seeks by time rely on. The broker runs as its own process with
 * test/support/clock-step.ts preloaded: each SIGUSR2 steps its wall clock an hour (back, or
 * forward), while the test's own clock and the monotonic clock go on.
 */
const HOUR = 3_600_000;
const PRELOAD = fileURLToPath(new URL("../support/clock-step.js", import.meta.url));

function clockEnv(initialOffsetMs = 0, stepMs = -HOUR): NodeJS.ProcessEnv {
  return {
    NODE_OPTIONS: `--import=${PRELOAD}`,
    NERVEBUS_TEST_CLOCK_STEP_MS: String(stepMs),
    NERVEBUS_TEST_CLOCK_OFFSET_MS: String(initialOffsetMs),
  };
}

/** Steps the broker's wall clock (back an hour unless said); resolves once the broker says it has. */
function step(broker: BrokerProcess): Promise<void> {
  return new Promise((resolve) => {
    const seen = (d: Buffer) => {
      if (!d.toString().includes("clock stepped")) return;
      broker.child.stdout!.off("data", seen);
      resolve();
    };
    broker.child.stdout!.on("data", seen);
    broker.child.kill("SIGUSR2");
  });
}

function publishMs(d: Delivery): number {
  return Number(d.publishTime!.seconds) * 1000 + Math.floor(d.publishTime!.nanos / 1e6);
}

async function stop(broker: BrokerProcess): Promise<void> {
  broker.child.kill("SIGTERM");
  await broker.exited;
}

/**
 * A broker on a SQLite file of its own for the tests of the enclosing describe, its wall clock
 * stepped by `stepMs` at each step(); `broker` and `client` are set once it runs.
 */
function useClockBroker(stepMs: number, flags: string[] = []): { broker: BrokerProcess; client: TestClient } {
  const ctx = {} as { broker: BrokerProcess; client: TestClient };
  let dir = "";
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "nb-clock-"));
    ctx.broker = await spawnBroker(
      ["--store", `sqlite:${join(dir, "clock.db")}`, ...flags],
      clockEnv(0, stepMs),
    );
    ctx.client = new TestClient(ctx.broker.address);
  });
  after(async () => {
    ctx.client.close();
    await stop(ctx.broker);
    rmSync(dir, { recursive: true, force: true });
  });
  return ctx;
}

describe("the broker's wall clock steps back an hour", () => {
  const ctx = useClockBroker(-HOUR, ["--heartbeat-ms", "300"]);

  it("a lease taken before the step still ends after its ack deadline", async () => {
    await ctx.client.publish("leased", ["m"]);
    const s = ctx.client.receive("leased", "s", { ackDeadlineMs: 1000 });
    await s.until(() => s.deliveries.length === 1, 10_000, "the first delivery");
    await step(ctx.broker);
    await s.until(() => s.deliveries.length === 2, 10_000, "the redelivery after the 1 s ack deadline");
    assert.equal(s.deliveries[1]!.seq, s.deliveries[0]!.seq);
    assert.equal(s.deliveries[1]!.attempt, 2);
    s.cancel();
  });

  it("a nack's delay set before the step still ends on time", async () => {
    await ctx.client.publish("nacked", ["m"]);
    const s = ctx.client.receive("nacked", "s", { ackDeadlineMs: 60_000 });
    await s.until(() => s.deliveries.length === 1, 10_000, "the first delivery");
    s.send({ nacks: [{ seq: s.deliveries[0]!.seq, delay: { seconds: 1n, nanos: 0 } }] });
    await new Promise((r) => setTimeout(r, 100));
    await step(ctx.broker);
    await s.until(() => s.deliveries.length === 2, 10_000, "the redelivery after the 1 s nack delay");
    assert.equal(s.deliveries[1]!.attempt, 2);
    s.cancel();
  });

  it("an idle stream keeps getting heartbeats", async () => {
    const s = ctx.client.receive("idle", "s");
    const beats = () => s.responses.filter((r) => r.heartbeat !== undefined).length;
    await s.until(() => beats() >= 1, 10_000, "a first heartbeat");
    await step(ctx.broker);
    const before = beats();
    await new Promise((r) => setTimeout(r, 2000));
    assert.ok(beats() - before >= 3, `heartbeats every 300 ms: ${beats() - before} in 2 s after the step`);
    s.cancel();
  });

  it("publish times keep the log's order, and a seek by time finds what was published after it", async () => {
    await ctx.client.publish("times", ["before"]);
    await step(ctx.broker);
    await ctx.client.publish("times", ["after"]);
    const s = ctx.client.receive("times", "s");
    await s.until(() => s.deliveries.length === 2, 10_000, "both messages");
    const [first, second] = s.deliveries as [Delivery, Delivery];
    assert.ok(
      publishMs(second) >= publishMs(first),
      `publish times ${publishMs(first)}, ${publishMs(second)}`,
    );
    s.ack(s.deliveries.map((d) => d.seq));
    await s.end();
    // Both were published at or after the first one's time: a seek to it delivers both.
    await ctx.client.adminCall("seekSubscription", {
      topic: "times",
      name: "s",
      target: { case: "time", value: first.publishTime! },
    });
    const again = ctx.client.receive("times", "s");
    await again.until(() => again.deliveries.length === 2, 10_000, "both messages after the seek");
    assert.deepEqual(
      again.deliveries.map((d) => Buffer.from(d.data).toString()),
      ["before", "after"],
    );
    again.cancel();
  });
});

describe("the broker's wall clock steps forward an hour", () => {
  const ctx = useClockBroker(HOUR);

  it("a lease of 30 s is not taken back at once", async () => {
    await ctx.client.publish("leased", ["m"]);
    const s = ctx.client.receive("leased", "s", { ackDeadlineMs: 30_000 });
    await s.until(() => s.deliveries.length === 1, 10_000, "the first delivery");
    await step(ctx.broker);
    // A new message makes the subscription look at its leases again.
    await ctx.client.publish("leased", ["n"]);
    await s.until(() => s.deliveries.length >= 2, 10_000, "the new message");
    await new Promise((r) => setTimeout(r, 1000));
    assert.deepEqual(
      s.deliveries.map((d) => [Buffer.from(d.data).toString(), d.attempt]),
      [
        ["m", 1],
        ["n", 1],
      ],
      "no redelivery a second into a 30 s lease",
    );
    const stats = await ctx.client.adminCall("getStats", { topic: "leased" });
    assert.equal(stats.subscriptions[0]!.waitingRedelivery, 0n, "nothing taken back");
    assert.equal(stats.subscriptions[0]!.inFlight, 2n, "both still leased");
    s.cancel();
  });

  it("a producer's retry within the dedup window is still a duplicate", async () => {
    const first = await ctx.client.publish("dedup", [{ data: Buffer.from("m"), messageId: "order-1" }]);
    await step(ctx.broker);
    const retry = await ctx.client.publish("dedup", [{ data: Buffer.from("m"), messageId: "order-1" }]);
    assert.equal(first.results[0]!.outcome, MessageResult_Outcome.APPENDED);
    assert.equal(retry.results[0]!.outcome, MessageResult_Outcome.DUPLICATE);
    assert.equal(retry.results[0]!.seq, first.results[0]!.seq);
  });
});

describe("a broker restarted with its wall clock an hour behind", () => {
  it("stamps new messages no earlier than the last stored one", async () => {
    const dir = mkdtempSync(join(tmpdir(), "nb-clock-restart-"));
    const store = `sqlite:${join(dir, "clock.db")}`;
    try {
      let broker = await spawnBroker(["--store", store], clockEnv());
      let client = new TestClient(broker.address);
      await client.publish("restarted", ["before"]);
      client.close();
      await stop(broker);
      broker = await spawnBroker(["--store", store], clockEnv(-HOUR));
      client = new TestClient(broker.address);
      try {
        await client.publish("restarted", ["after"]);
        const s = client.receive("restarted", "s");
        await s.until(() => s.deliveries.length === 2, 10_000, "both messages");
        const [first, second] = s.deliveries as [Delivery, Delivery];
        assert.ok(
          publishMs(second) >= publishMs(first),
          `publish times ${publishMs(first)}, ${publishMs(second)}`,
        );
        s.cancel();
      } finally {
        client.close();
        await stop(broker);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
