import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { NerveBusClient, type ReceivedMessage, writeOutbox } from "@nervebus/client";
import { type Context, context, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import mysql from "mysql2/promise";
import { TestBroker } from "./support/broker.js";
import { deferred } from "./support/helpers.js";

/*
 * writeOutbox against a real MariaDB (test/support/start-mariadb.sh at the repository root) and
 * a broker relaying it (--outbox; its own store is SQLite, the outbox another database).
 */

const SCRIPT = fileURLToPath(new URL("../../../../test/support/start-mariadb.sh", import.meta.url));
const parent = mkdtempSync(join(tmpdir(), "nervebus-ts-mariadb-"));
const dir = join(parent, "server");
let server = "";
let broker: TestBroker;

before(async () => {
  // What an application's OpenTelemetry SDK sets up: an active context per async flow.
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  server = execFileSync("bash", [SCRIPT, dir], { encoding: "utf8" }).trim();
  const admin = await mysql.createConnection({ uri: server });
  await admin.query("DROP DATABASE IF EXISTS outbox_ts");
  await admin.query("CREATE DATABASE outbox_ts");
  await admin.end();
  broker = await TestBroker.start(["--outbox", `${server}outbox_ts`, "--outbox-gap-wait-ms", "50"]);
});

after(async () => {
  context.disable();
  await broker?.dispose();
  execFileSync("bash", [SCRIPT, "--stop", dir]);
  rmSync(parent, { recursive: true, force: true });
});

test("writeOutbox: committed messages are published once, in commit order, with the caller's trace; rolled back ones never", async () => {
  const conn = await mysql.createConnection({ uri: `${server}outbox_ts` });
  try {
    for (let i = 0; ; i++) {
      try {
        await conn.query("SELECT 1 FROM nb_outbox_relay");
        break;
      } catch (err) {
        if (i > 200) throw err;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const write = async (data: string, commit: boolean, ctx: Context = context.active()) => {
      await conn.beginTransaction();
      const id = await context.with(ctx, () =>
        writeOutbox(conn, "outbox-ts", { data, orderingKey: "k", attributes: { kind: "t" } }),
      );
      await (commit ? conn.commit() : conn.rollback());
      return id;
    };
    await write("rolled back", false);
    const traced = trace.setSpanContext(context.active(), {
      traceId: "0af7651916cd43dd8448eb211c80319c",
      spanId: "b7ad6b7169203331",
      traceFlags: 1,
      isRemote: true,
    });
    const first = await write("first", true, traced);
    for (let i = 0; i < 5; i++) await write(`k-${i}`, true);

    const client = new NerveBusClient(broker.address);
    const got: ReceivedMessage[] = [];
    const done = deferred();
    const sub = client.subscribe(
      "outbox-ts",
      "check",
      (m) => {
        got.push(m);
        if (m.text() === "k-4") done.resolve();
      },
      { start: "earliest", concurrency: 1 },
    );
    const timer = setTimeout(() => done.reject(new Error(`got ${got.length} messages`)), 30_000);
    try {
      await done.promise;
    } finally {
      clearTimeout(timer);
      await sub.close();
      client.close();
    }
    assert.deepEqual(
      got.map((m) => m.text()),
      ["first", "k-0", "k-1", "k-2", "k-3", "k-4"],
    );
    assert.equal(got[0]!.traceId, "0af7651916cd43dd8448eb211c80319c");
    assert.equal(got[0]!.attributes.kind, "t");
    assert.equal(got[0]!.orderingKey, "k");
    assert.match(got[0]!.messageId, new RegExp(`^outbox/[0-9a-f]{16}/${first}$`));
  } finally {
    await conn.end();
  }
});
