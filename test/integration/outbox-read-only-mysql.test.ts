import assert from "node:assert/strict";
import { test } from "node:test";
import type mysql from "mysql2/promise";
import { startBroker, TestClient } from "../support/broker.js";
import { pollUntil, readOnlyGauge } from "../support/failover.js";
import { useTestMysql } from "../support/mariadb.js";
import { relayReady } from "../support/outbox.js";

// Defect: when the outbox's server (the application's database) turned read-only, the relay's
// deletes failed and were retried, but only its log said so: nervebus_store_read_only,
// /api/status and /healthz reported the store's servers alone. Now the relay's server is there
// too, with role="outbox", apart from the store's even on the same server.

const testMysql = useTestMysql();

type ReadOnlyEntry = { server: string; role: string; readOnly: boolean; since: number; error?: string };

test("outbox read-only: nervebus_store_read_only{role=\"outbox\"} is 1 while the outbox's server refuses the relay's writes, the store's series stays 0; /api/status and /healthz say so", async () => {
  // The store's user (the admin) bypasses read_only; the relay's does not: one server, two roles.
  const store = await testMysql().database("outbox_read_only_store");
  const admin = await testMysql().database("outbox_read_only_app");
  const db = new URL(admin).pathname.slice(1);
  await testMysql().query(admin, "CREATE USER IF NOT EXISTS 'nbrooutbox'@'127.0.0.1' IDENTIFIED BY 'pw'");
  await testMysql().query(admin, `GRANT ALL PRIVILEGES ON \`${db}\`.* TO 'nbrooutbox'@'127.0.0.1'`);
  const server = new URL(admin).host;
  const bus = await startBroker(store, {
    outbox: `mysql://nbrooutbox:pw@${server}/${db}`,
    outboxGapWaitMs: 50,
  });
  const client = new TestClient(bus.address);
  const sub = client.receive("orders", "audit", { from: "earliest" });
  const http = bus.httpAddress!;
  const status = async () =>
    (
      (await (await fetch(`http://${http}/api/status`)).json()) as {
        broker: { storeReadOnly: ReadOnlyEntry[] };
      }
    ).broker.storeReadOnly;
  const healthz = async () => (await fetch(`http://${http}/healthz`)).text();
  const commitRow = (data: string) =>
    testMysql().query(admin, "INSERT INTO nb_outbox (topic, ordering_key, data) VALUES ('orders', '', ?)", [
      data,
    ]);
  const outboxLeft = async () =>
    Number(
      (await testMysql().query<mysql.RowDataPacket[]>(admin, "SELECT COUNT(*) AS n FROM nb_outbox"))[0]!.n,
    );
  const texts = () =>
    sub.deliveries.filter((d) => d.attempt === 1).map((d) => Buffer.from(d.data).toString());
  let readOnly = false;
  try {
    await relayReady(testMysql(), admin);
    await commitRow("r1");
    await sub.until(() => texts().length >= 1, 30_000, "the row before");
    await pollUntil("r1 deleted", 0, outboxLeft);
    assert.equal(await readOnlyGauge(http, server, "outbox"), 0, "0 while the outbox's server takes writes");
    assert.equal(await readOnlyGauge(http, server, "store"), 0);
    assert.deepEqual(
      (await status()).map((s) => [s.server, s.role, s.readOnly]),
      [
        [server, "store", false],
        [server, "outbox", false],
      ],
    );

    await testMysql().query(admin, "SET GLOBAL read_only = ON");
    readOnly = true;
    // Committed by the application (a user read_only does not bind): relayed, but its delete is refused.
    await commitRow("r2");
    await sub.until(() => texts().length >= 2, 30_000, "the row committed as the server turned read-only");
    await pollUntil("the outbox's gauge once its server is read-only", 1, () =>
      readOnlyGauge(http, server, "outbox"),
    );
    assert.equal(await readOnlyGauge(http, server, "store"), 0, "the store's writes are taken");
    const outbox = (await status()).find((s) => s.role === "outbox");
    assert.equal(outbox?.readOnly, true);
    assert.ok(outbox.since > 0, `since: ${outbox.since}`);
    assert.match(String(outbox.error), /read-only/);
    const health = await healthz();
    assert.match(health, /^ok\noutbox server read-only since .*: the relay retries\n$/);
    assert.equal(await outboxLeft(), 1, "r2 stays until its delete is taken");

    await testMysql().query(admin, "SET GLOBAL read_only = OFF");
    readOnly = false;
    await pollUntil("the outbox's gauge once its server takes writes", 0, () =>
      readOnlyGauge(http, server, "outbox"),
    );
    await pollUntil("r2 deleted", 0, outboxLeft);
    assert.equal((await status()).find((s) => s.role === "outbox")?.readOnly, false);
    assert.doesNotMatch(await healthz(), /read-only/);
    // r2 was relayed once: the next row follows it.
    await commitRow("r3");
    await sub.until(() => texts().includes("r3"), 30_000, "the row after");
    assert.deepEqual(texts(), ["r1", "r2", "r3"]);
  } finally {
    if (readOnly) await testMysql().query(admin, "SET GLOBAL read_only = OFF");
    await sub.end().catch(() => undefined);
    client.close();
    await bus.stop();
  }
});
