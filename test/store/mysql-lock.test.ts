import assert from "node:assert/strict";
import { test } from "node:test";
import type mysql from "mysql2/promise";
import { LogMessage } from "../../src/core/index.js";
import { MysqlStore } from "../../src/store/index.js";
import { useTestMysql } from "../support/mariadb.js";

const testMysql = useTestMysql();
const open = (url: string) =>
  MysqlStore.open({ url, poolSize: 2, allowUnsafeDurability: false, log: () => {} });

test("mysql: a broker whose lock connection dies takes the lock back; if another broker took it, it writes nothing more", async () => {
  const server = testMysql();
  const url = await server.database("lock_loss");
  const database = new URL(url).pathname.slice(1);
  const lockOwner = async () =>
    (
      await server.query<mysql.RowDataPacket[]>(url, "SELECT IS_USED_LOCK(?) AS id", [`nervebus:${database}`])
    )[0]?.id as number | null;

  const a = await open(url);
  try {
    const { topic } = (await a.ensureTopic("t", {
      shards: 1,
      config: { retentionMs: 0, retentionBytes: 0, dedupWindowMs: 0, ephemeral: false },
    }))!;
    // The lock connection drops (a network blip): ping takes the lock back.
    await server.query(url, `KILL ${await lockOwner()}`);
    await a.ping();
    assert.notEqual(await lockOwner(), null, "the lock is held again");
    await a.insertMessages(topic, 0, [
      LogMessage.of(1, 1, Buffer.from("a"), { attributes: {}, orderingKey: "", messageId: "" }),
    ]);

    // It drops again, and a second broker takes the database before the first notices.
    await server.query(url, `KILL ${await lockOwner()}`);
    const b = await open(url);
    try {
      await assert.rejects(a.ping(), (err: Error & { code?: string }) => {
        assert.equal(err.code, "failed_precondition");
        assert.match(err.message, /lost ownership of the database: another broker took the named lock/);
        return true;
      });
      await assert.rejects(
        a.insertMessages(topic, 0, [
          LogMessage.of(2, 1, Buffer.from("b"), { attributes: {}, orderingKey: "", messageId: "" }),
        ]),
        /lost ownership/,
      );
      assert.deepEqual(
        (await b.readMessages(topic, 1, 10)).map((m) => m.seq),
        [1],
        "nothing was written after ownership was lost",
      );
    } finally {
      await b.close();
    }
  } finally {
    await a.close();
  }
});
