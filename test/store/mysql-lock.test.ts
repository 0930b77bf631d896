import assert from "node:assert/strict";
import { test } from "node:test";
import mysql from "mysql2/promise";
import { type LogFormat, LogMessage, type NerveBusError, type TopicRecord } from "../../src/core/index.js";
import { MysqlStore } from "../../src/store/index.js";
import { useTestMysql } from "../support/mariadb.js";

const testMysql = useTestMysql();
const open = (
  url: string,
  extra: { leaseWaitMs?: number; onOwnershipLost?: (err: NerveBusError) => void } = {},
) =>
  MysqlStore.open({
    url,
    poolSize: 2,
    allowUnsafeDurability: false,
    leaseTtlMs: 3000,
    leaseRenewMs: 1000,
    ...extra,
    log: () => {},
  });
const row = (seq: number, data: string) =>
  LogMessage.of(seq, 1, Buffer.from(data), { attributes: {}, orderingKey: "", messageId: "" });
const topicConfig = { retentionMs: 0, retentionBytes: 0, dedupWindowMs: 0, ephemeral: false };

async function makeTopic(store: MysqlStore, name = "t", format: LogFormat = 2): Promise<TopicRecord> {
  const { topic } = (await store.ensureTopic(name, { shards: 1, config: topicConfig, format }))!;
  await store.claimTopic(topic);
  return topic;
}

test("mysql: a second broker waits for a live owner's lease and then refuses, naming the owner; a closed owner hands over at once", async () => {
  const server = testMysql();
  const url = await server.database("lease_wait");
  const a = await open(url);
  try {
    const started = performance.now();
    await assert.rejects(open(url, { leaseWaitMs: 1500 }), (err: NerveBusError) => {
      assert.equal(err.code, "failed_precondition");
      assert.match(
        err.message,
        new RegExp(`owned by another broker, ${a.ownership().owner.replace(/[/]/g, "\\/")}`),
      );
      return true;
    });
    assert.ok(performance.now() - started >= 1400, "it waited for the lease before giving up");
    assert.equal(a.ownership().valid, true);
  } finally {
    await a.close();
  }
  const started = performance.now();
  const b = await open(url, { leaseWaitMs: 0 });
  try {
    assert.ok(performance.now() - started < 1000, "a released lease is taken at once");
    assert.equal(b.ownership().epoch, 2, "the new owner's epoch is higher");
  } finally {
    await b.close();
  }
});

test("mysql: an owner whose lock connection drops keeps the store; once a second broker takes it over, every write of the first fails and it reports the loss", async () => {
  const server = testMysql();
  const url = await server.database("lease_loss");
  const database = new URL(url).pathname.slice(1);
  const lockHolder = async () =>
    (
      await server.query<mysql.RowDataPacket[]>(url, "SELECT IS_USED_LOCK(?) AS id", [`nervebus:${database}`])
    )[0]?.id as number | null;
  let lost: NerveBusError | undefined;
  const a = await open(url, { onOwnershipLost: (err) => (lost = err) });
  try {
    const topic = await makeTopic(a);
    // A network blip drops the lock connection: the next renewal takes the lock back.
    await server.query(url, `KILL ${await lockHolder()}`);
    await a.ping();
    for (let i = 0; i < 30 && (await lockHolder()) === null; i++)
      await new Promise((r) => setTimeout(r, 100));
    assert.notEqual(await lockHolder(), null, "the named lock is held again");
    await a.insertMessages(topic, 0, [row(1, "a")]);

    // It drops again, and a second broker takes the database before the first renews: the
    // first's next write matches no fence row and rolls back.
    await server.query(url, `KILL ${await lockHolder()}`);
    const b = await open(url, { leaseWaitMs: 0 });
    try {
      await assert.rejects(a.insertMessages(topic, 0, [row(2, "b")]), (err: NerveBusError) => {
        assert.equal(err.code, "unavailable");
        assert.match(err.message, /no longer owns the store/);
        return true;
      });
      assert.ok(lost, "the loss was reported");
      await assert.rejects(
        a.savePointers(topic, [{ subscription: "s", ptr: 1, state: null }]),
        /no longer owns/,
      );
      await assert.rejects(a.ping(), /no longer owns/);
      assert.deepEqual(
        (await b.readMessages(topic, 1, 10)).map((m) => m.seq),
        [1],
        "nothing was written after ownership was lost",
      );
      assert.equal(await b.loadPointer(topic, "s"), null, "nor any subscription state");
      await b.claimTopic(topic);
      await b.insertMessages(topic, 0, [row(2, "b2")]);
    } finally {
      await b.close();
    }
  } finally {
    await a.close();
  }
});

test("mysql: once a newer epoch holds a shard's fence row, a write to it stores nothing, whether small (one round trip) or large (a prepared INSERT)", async () => {
  const server = testMysql();
  const url = await server.database("fence_moved");
  let lost: NerveBusError | undefined;
  const a = await open(url, { onOwnershipLost: (err) => (lost = err) });
  try {
    const topic = await makeTopic(a);
    await a.insertMessages(topic, 0, [row(1, "small")]);
    // What a new owner does first: it raises the fence rows of the topic past this epoch.
    await server.query(url, "UPDATE nb_fence SET epoch = epoch + 1 WHERE topic_id = ?", [topic.id]);
    const small = [row(2, "x".repeat(100))];
    const large = Array.from({ length: 20 }, (_, i) => row(2 + i, "y".repeat(1000)));
    for (const rows of [small, large]) {
      await assert.rejects(a.insertMessages(topic, 0, rows), (err: NerveBusError) => {
        assert.equal(err.code, "unavailable");
        assert.match(err.message, /fenced at epoch 2/);
        return true;
      });
    }
    assert.match(String(lost?.message), /fenced at epoch 2/, "the loss was reported");
    assert.deepEqual(
      (await server.query<mysql.RowDataPacket[]>(url, "SELECT first_seq, last_seq FROM nb_run_1_0")).map(
        (r) => [Number(r.first_seq), Number(r.last_seq)],
      ),
      [[1, 1]],
      "neither write stored a row",
    );
  } finally {
    await a.close();
  }
});

test("mysql: a run INSERT waiting for its fence row while a new owner raises it stores nothing, at either isolation level; on one server it is one prepared statement", async () => {
  const server = testMysql();
  for (const [i, level] of ["REPEATABLE READ", "READ COMMITTED"].entries()) {
    const url = await server.database(`fence_raised_while_waiting_${i}`);
    // The broker's connections take the server's default level (a DBA may well have chosen
    // READ COMMITTED, where a plain read in a write takes no lock).
    // Until the store is closed: a connection its pool opens later takes the level too.
    await server.query(url, `SET GLOBAL TRANSACTION ISOLATION LEVEL ${level}`);
    let lost: NerveBusError | undefined;
    const a = await open(url, { onOwnershipLost: (err) => (lost = err) }).catch(async (err: unknown) => {
      await server.query(url, "SET GLOBAL TRANSACTION ISOLATION LEVEL REPEATABLE READ");
      throw err;
    });
    const owner = await mysql.createConnection(url);
    try {
      assert.equal(a.fencedPool.lockingReadFences, true, "one MariaDB server fences by a locking read");
      const topic = await makeTopic(a);
      await a.insertMessages(topic, 0, [row(1, "first")]);
      // A new owner in the middle of its takeover: it holds the fence row while it raises it.
      await owner.query("START TRANSACTION");
      await owner.query("SELECT epoch FROM nb_fence WHERE topic_id = ? FOR UPDATE", [topic.id]);
      let settled = false;
      const write = a.insertMessages(topic, 0, [row(2, "z".repeat(50_000))]).finally(() => {
        settled = true;
      });
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(settled, false, `${level}: the write waits for the fence row`);
      await owner.query("UPDATE nb_fence SET epoch = epoch + 1 WHERE topic_id = ?", [topic.id]);
      await owner.query("COMMIT");
      await assert.rejects(write, (err: NerveBusError) => {
        assert.equal(err.code, "unavailable");
        assert.match(err.message, /fenced at epoch 2/);
        return true;
      });
      assert.match(String(lost?.message), /fenced at epoch 2/, `${level}: the loss was reported`);
      assert.deepEqual(
        (await server.query<mysql.RowDataPacket[]>(url, `SELECT first_seq FROM nb_run_${topic.id}_0`)).map(
          (r) => Number(r.first_seq),
        ),
        [1],
        `${level}: the waiting write stored nothing`,
      );
    } finally {
      await owner.end();
      await a.close();
      await server.query(url, "SET GLOBAL TRANSACTION ISOLATION LEVEL REPEATABLE READ");
    }
  }
});

test("mysql: a row already at a seq is kept only if it is the same message; different content is an error, never a success (format 1)", async () => {
  const server = testMysql();
  const url = await server.database("dup_content");
  const a = await open(url);
  try {
    const topic = await makeTopic(a, "t", 1);
    await a.insertMessages(topic, 0, [row(1, "one"), row(2, "two"), row(3, "three")]);
    // A retry of a write whose commit outcome was lost: the same rows again succeed.
    await a.insertMessages(topic, 0, [row(2, "two"), row(3, "three"), row(4, "four")]);
    assert.deepEqual(
      (await a.readMessages(topic, 1, 10)).map((m) => Buffer.from(m.data).toString()),
      ["one", "two", "three", "four"],
    );
    await assert.rejects(
      a.insertMessages(topic, 0, [row(4, "FOUR"), row(5, "five")]),
      (err: NerveBusError) => {
        assert.match(err.message, /seq 4 of topic t already holds a different message/);
        return true;
      },
    );
    assert.deepEqual(
      (await server.query<mysql.RowDataPacket[]>(url, "SELECT seq FROM nb_msg_1_0 ORDER BY seq")).map((r) =>
        Number(r.seq),
      ),
      [1, 2, 3, 4],
      "the conflicting write rolled back whole",
    );
  } finally {
    await a.close();
  }
});

test("mysql: a run already stored is kept only if it is the same run; different content is an error, never a success (format 2)", async () => {
  const server = testMysql();
  const url = await server.database("dup_run");
  const a = await open(url);
  try {
    const topic = await makeTopic(a);
    await a.insertMessages(topic, 0, [row(1, "one"), row(2, "two"), row(3, "three")]);
    await a.insertMessages(topic, 0, [row(4, "four")]);
    // A retry of a write whose commit outcome was lost: the same runs again succeed.
    await a.insertMessages(topic, 0, [row(4, "four")]);
    assert.deepEqual(
      (await a.readMessages(topic, 1, 10)).map((m) => Buffer.from(m.data).toString()),
      ["one", "two", "three", "four"],
    );
    await assert.rejects(
      a.insertMessages(topic, 0, [row(4, "FOUR"), row(5, "five")]),
      (err: NerveBusError) => {
        assert.match(err.message, /seq 4 of topic t already holds a different run/);
        return true;
      },
    );
    assert.deepEqual(
      (
        await server.query<mysql.RowDataPacket[]>(
          url,
          "SELECT first_seq, last_seq FROM nb_run_1_0 ORDER BY first_seq",
        )
      ).map((r) => [Number(r.first_seq), Number(r.last_seq)]),
      [
        [1, 3],
        [4, 4],
      ],
      "the conflicting write rolled back whole",
    );
  } finally {
    await a.close();
  }
});
