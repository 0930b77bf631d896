import assert from "node:assert/strict";
import { test } from "node:test";
import type mysql from "mysql2/promise";
import type { NerveBusError, TopicConfig } from "../../src/core/index.js";
import { openStore } from "../../src/store/index.js";
import { useTestMysql } from "../support/mariadb.js";

const testMysql = useTestMysql();

const CONFIG: TopicConfig = { retentionMs: 0, retentionBytes: 0, dedupWindowMs: 0, ephemeral: false };

/** A broker's store of a one-database cluster; no heartbeat runs within a test. */
async function clusterStore(url: string, address: string) {
  const store = await openStore(url, {
    mysqlPoolSize: 4,
    mysqlAllowUnsafeDurability: false,
    log: () => undefined,
    cluster: true,
    leaseTtlMs: 60_000,
    leaseRenewMs: 30_000,
  });
  await store.cluster!.advertise(address);
  return store;
}

test("mysql --cluster: a claim that lands after the topic's owner deleted it answers NOT_FOUND and leaves no lease or fence rows of its own (it would go on renewing a lease of nothing)", async () => {
  const server = testMysql();
  const url = await server.database("claim_deleted");
  const A = await clusterStore(url, "127.0.0.1:1");
  const B = await clusterStore(url, "127.0.0.1:2");
  try {
    const made = (await A.ensureTopic("gone", { shards: 2, config: CONFIG }))!.topic;
    await A.claimTopic(made);
    // B looks the topic up (as a broker loading it does), then its owner deletes it, then B claims.
    const seen = (await B.ensureTopic("gone", null))!.topic;
    await A.deleteTopic(made);
    await assert.rejects(B.claimTopic(seen), (err: NerveBusError) => {
      assert.equal(err.code, "not_found");
      assert.match(err.message, /topic gone does not exist/);
      return true;
    });
    assert.equal(B.serves!(seen), false, "B holds no lease of the deleted topic");
    const self = B.cluster!.view().self;
    const leases = await server.query<mysql.RowDataPacket[]>(
      url,
      "SELECT owner FROM nb_lease WHERE unit = ? AND owner = ?",
      [`topic:${seen.id}`, self],
    );
    assert.deepEqual(leases, [], "no lease row of B's for the deleted topic");
    const fences = await server.query<mysql.RowDataPacket[]>(
      url,
      "SELECT slot, epoch FROM nb_fence WHERE topic_id = ? AND slot >= 0",
      [seen.id],
    );
    assert.deepEqual(fences, [], "no shard fence rows for the deleted topic");
    assert.ok(!B.cluster!.view().members.some((m) => m.topics.some((t) => t.name === "gone")));
    // A topic made again under the same name is a new topic, which B claims as usual.
    const again = (await A.ensureTopic("gone", { shards: 1, config: CONFIG }))!.topic;
    assert.notEqual(again.id, seen.id);
    await B.claimTopic((await B.ensureTopic("gone", null))!.topic);
    assert.equal(B.serves!(again), true);
  } finally {
    await A.close();
    await B.close();
  }
});
