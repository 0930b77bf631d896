import assert from "node:assert/strict";
import type mysql from "mysql2/promise";
import { writeOutbox } from "../../clients/ts/src/outbox.js";
import type { TestMysql } from "./mariadb.js";

/** Waits until the broker's relay has created the outbox tables and taken the outbox. */
export async function relayReady(server: TestMysql, url: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      await server.query(url, "SELECT 1 FROM nb_outbox_relay");
      return;
    } catch (err) {
      if (i > 200) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/**
 * The application's side of commit order: each transaction bumps its key's counter row after
 * writing the outbox, and the value it read is that transaction's place in the key's commit
 * order (the row lock serializes them; the order in which COMMITs return to clients does not
 * tell, since InnoDB releases locks before the commit's log flush returns).
 */
export async function bumpCounter(conn: mysql.Connection, key: string): Promise<number> {
  await conn.query("INSERT INTO counters (k, n) VALUES (?, 1) ON DUPLICATE KEY UPDATE n = n + 1", [key]);
  const [rows] = await conn.query<mysql.RowDataPacket[]>("SELECT n FROM counters WHERE k = ?", [key]);
  return Number(rows[0]!.n);
}

/** Per key, the payloads of committed transactions in the key's commit order. */
export class CommitLog {
  readonly #byKey = new Map<string, { n: number; payloads: string[] }[]>();
  total = 0;
  add(key: string, n: number, payloads: string[]): void {
    const list = this.#byKey.get(key) ?? [];
    list.push({ n, payloads });
    this.#byKey.set(key, list);
    this.total += payloads.length;
  }
  /** Asserts that each key's messages in `texts` are exactly its committed ones, in commit order. */
  check(texts: readonly string[]): void {
    for (const [key, list] of this.#byKey) {
      const expected = [...list].sort((a, b) => a.n - b.n).flatMap((t) => t.payloads);
      const seen = texts.filter((t) => t.startsWith(`${key}:`));
      assert.deepEqual(seen, expected, `order of ${key} is its commit order`);
    }
  }
}

/** Commits one outbox row on `conn` in a transaction of its own; returns its id. */
export async function commitOne(
  conn: mysql.Connection,
  topic: string,
  data: string,
  orderingKey: string,
): Promise<number> {
  await conn.beginTransaction();
  await writeOutbox(conn, topic, { data, orderingKey });
  const [[row]] = await conn.query<mysql.RowDataPacket[]>("SELECT LAST_INSERT_ID() AS id");
  await conn.commit();
  return Number(row!.id);
}

/** Waits until the relay stored a cursor at or above `id` (the rows up to it relayed and deleted). */
export async function relayedThrough(server: TestMysql, url: string, id: number): Promise<void> {
  for (let i = 0; ; i++) {
    const [row] = await server.query<mysql.RowDataPacket[]>(url, "SELECT cursor_id FROM nb_outbox_relay");
    if (Number(row?.cursor_id) >= id) return;
    assert.ok(i < 1500, `the relay reaches id ${id} (cursor ${row?.cursor_id})`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
