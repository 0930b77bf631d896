import assert from "node:assert/strict";
import { test } from "node:test";
import type mysql from "mysql2/promise";
import { LogMessage, type NerveBusError, type TopicConfig } from "../../src/core/index.js";
import { type MysqlStore, openStore } from "../../src/store/index.js";
import { useTestMysql } from "../support/mariadb.js";
import { storedRows } from "../support/stored-rows.js";

const testMysql = useTestMysql();

const CONFIG: TopicConfig = { retentionMs: 0, retentionBytes: 0, dedupWindowMs: 0, ephemeral: false };
const message = (seq: number, data: string) =>
  LogMessage.of(seq, 1, Buffer.from(data), { attributes: {}, orderingKey: "", messageId: "" });

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

test("mysql --cluster: a broker that lost a topic and claimed it again drops every write of its earlier claim (stale acks, runs at seqs it assigned then); the new claim's writes land and the stale ones do not end it", async () => {
  const server = testMysql();
  const url = await server.database("claim_tenure");
  const A = (await clusterStore(url, "127.0.0.1:1")) as MysqlStore;
  const B = (await clusterStore(url, "127.0.0.1:2")) as MysqlStore;
  const pointer = async (topicId: number) => {
    const rows = await server.query<mysql.RowDataPacket[]>(
      url,
      "SELECT ptr FROM nb_pointers WHERE topic_id = ? AND subscription = 's'",
      [topicId],
    );
    return Number(rows[0]?.ptr);
  };
  try {
    const made = (await A.ensureTopic("tenure", { shards: 2, config: CONFIG }))!.topic;
    const first = await A.claimTopic(made);
    assert.notEqual(first.tenure, undefined, "a cluster claim names itself");
    await A.savePointers(first, [{ subscription: "s", ptr: 10, state: null }]);
    await A.insertMessages(first, 0, [message(1, "a1")]);
    // A is frozen past its lease (its row lapses); B takes the topic, acks up to 50 and writes seq 2.
    await server.query(url, "UPDATE nb_lease SET expires_at = 0 WHERE unit = ?", [`topic:${made.id}`]);
    const byB = await B.claimTopic((await B.ensureTopic("tenure", null))!.topic);
    await B.savePointers(byB, [{ subscription: "s", ptr: 50, state: null }]);
    await B.insertMessages(byB, 1, [message(2, "b2")]);
    // A wakes, learns it lost the topic, and claims it again once B hands it back.
    await A.cluster!.heartbeat();
    assert.equal(A.serves!(first), false);
    await B.releaseTopic!(byB);
    const second = await A.claimTopic(made);
    assert.notEqual(second.tenure, first.tenure, "the new claim is another tenure");
    assert.equal(A.serves!(second), true);
    assert.equal(A.serves!(first), false, "the ended claim delivers nothing");

    // What the first claim still had in flight or queued (its subscription state, a run at a
    // seq B has since used) is refused and stores nothing.
    const stale = (err: NerveBusError) => {
      assert.equal(err.code, "unavailable");
      assert.match(err.message, /earlier claim of it by this broker/);
      return true;
    };
    await assert.rejects(A.savePointers(first, [{ subscription: "s", ptr: 10, state: null }]), stale);
    await assert.rejects(A.insertMessages(first, 0, [message(2, "a2")]), stale);
    await assert.rejects(A.insertMessages(first, 1, [message(3, "a3")]), stale);
    assert.equal(await pointer(made.id), 50, "B's acks stand");
    const stored = await storedRows(server, url, "tenure");
    assert.deepEqual([...stored].sort(), [
      [1, "a1"],
      [2, "b2"],
    ]);
    // The refusals ended nothing: the second claim writes on.
    assert.equal(A.serves!(second), true);
    await A.savePointers(second, [{ subscription: "s", ptr: 60, state: null }]);
    await A.insertMessages(second, 1, [message(3, "a3")]);
    assert.equal(await pointer(made.id), 60);
    assert.equal((await storedRows(server, url, "tenure")).get(3), "a3");
  } finally {
    await A.close();
    await B.close();
  }
});
