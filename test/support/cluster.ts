import assert from "node:assert/strict";
import type * as grpc from "@grpc/grpc-js";
import type mysql from "mysql2/promise";
import type { Broker } from "../../src/core/index.js";
import type { TestClient, TestStream } from "./broker.js";
import type { TestMysql } from "./mariadb.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The advertised address of each topic's live owner in one database, read from its lease and
 * broker tables (a moved topic's sealed row names no broker, so it is left out).
 */
export async function liveOwners(server: TestMysql, url: string): Promise<Map<string, string>> {
  const rows = await server.query<mysql.RowDataPacket[]>(
    url,
    `SELECT t.name, b.address FROM nb_lease l JOIN nb_topics t ON l.unit = CONCAT('topic:', t.id)
       JOIN nb_brokers b ON b.id = l.owner
       WHERE l.expires_at > CAST(ROUND(UNIX_TIMESTAMP(NOW(3)) * 1000) AS SIGNED)`,
  );
  return new Map(rows.map((r) => [String(r.name), String(r.address)]));
}

/** Retries `fn` on UNAVAILABLE (what clients do) until it succeeds or `ms` pass. */
export async function retrying<T>(fn: () => Promise<T>, ms = 20_000): Promise<T> {
  const until = performance.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if ((err as grpc.ServiceError).code !== 14 || performance.now() > until) throw err;
      await sleep(100);
    }
  }
}

/** p-th quantile (0..1) of ascending `sorted`. */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;
}

/**
 * A source topic served by the broker `client` calls and a dead-letter topic served by the
 * broker at `ownerAddress` (names `prefix-N`), both created, and a subscription "work" of the
 * source that dead-letters to the other: dead letters that must be forwarded between brokers.
 */
export async function crossBrokerDeadLetters(
  client: TestClient,
  ownerAddress: string,
  prefix: string,
): Promise<{ source: string; dlq: string }> {
  // Both brokers have heartbeated: topics fall to either.
  await sleep(1200);
  const locate = async (topic: string) => (await client.adminCall("locateTopic", { topic })).address;
  let source = "";
  let dlq = "";
  for (let i = 0; i < 50 && (source === "" || dlq === ""); i++) {
    const at = await locate(`${prefix}-${i}`);
    if (at === "" && source === "") source = `${prefix}-${i}`;
    if (at === ownerAddress && dlq === "") dlq = `${prefix}-${i}`;
  }
  assert.ok(source !== "" && dlq !== "", "topics fall to both brokers");
  for (const name of [source, dlq])
    await retrying(() => client.adminCall("createTopic", { topic: { name } }));
  await retrying(() =>
    client.adminCall("createSubscription", {
      subscription: { topic: source, name: "work", deadLetterTopic: dlq },
    }),
  );
  return { source, dlq };
}

/**
 * Waits (on `stream`'s clock) until `broker` holds nothing of `topic`'s subscription: its
 * dead letters were acked at the source once durable at their topic's owner.
 */
export function untilSourceEmpty(stream: TestStream, broker: Broker, topic: string): Promise<void> {
  return stream.until(
    () => {
      const g = broker.subscriptionGauges().find((s) => s.topic === topic);
      return g !== undefined && g.backlog === 0 && g.inFlight === 0;
    },
    20_000,
    "the source backlog to empty: acked once durable at the dead-letter topic's owner",
  );
}
