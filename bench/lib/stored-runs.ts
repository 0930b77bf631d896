import Database from "better-sqlite3";
import type { TopicRecord } from "../../src/core/index.js";
import { MysqlRunLog, SqliteRunLog } from "../../src/store/index.js";
import type { TestMysql } from "../../test/support/mariadb.js";

/** How a topic's log was cut into format-2 rows: rows and the messages they hold. */
export interface StoredRuns {
  readonly rows: number;
  readonly messages: number;
}

/** The table a store's DDL creates (so a renamed table cannot leave the bench behind). */
export function tableOf(ddl: string): string {
  const m = /CREATE TABLE IF NOT EXISTS (\w+)/.exec(ddl);
  if (m === null) throw new Error(`no table name in ${ddl.slice(0, 80)}`);
  return m[1]!;
}

/** A topic record for the stores' DDL: only its id names the tables. */
export function runTopic(id: number, shards: number): TopicRecord {
  const config = { retentionMs: 0, retentionBytes: 0, dedupWindowMs: 0, ephemeral: false };
  return { id, name: `bench-${id}`, shards, format: 2, createdAt: 0, config };
}

const COUNT = "SELECT COUNT(*) AS n, COALESCE(SUM(last_seq - first_seq + 1), 0) AS m FROM";

/**
 * The rows and messages of a format-2 topic, read from its store after its broker stopped
 * (SQLite's file lock is then free): how the broker cut what it was sent into runs, to set
 * beside the run-row ceiling's --run-messages. Undefined when the topic is not format 2.
 */
export async function storedRuns(
  storeUrl: string,
  mysql: TestMysql | undefined,
  topicName: string,
): Promise<StoredRuns | undefined> {
  let rows = 0;
  let messages = 0;
  if (storeUrl.startsWith("sqlite:")) {
    const db = new Database(storeUrl.slice("sqlite:".length), { readonly: true });
    try {
      const t = db.prepare("SELECT id, shards, format FROM nb_topics WHERE name = ?").get(topicName) as
        | { id: number; shards: number; format: number }
        | undefined;
      if (t === undefined || t.format !== 2) return undefined;
      for (let s = 0; s < t.shards; s++) {
        const r = db
          .prepare(`${COUNT} ${tableOf(SqliteRunLog.tableSql(runTopic(t.id, t.shards), s))}`)
          .get() as {
          n: number;
          m: number;
        };
        rows += r.n;
        messages += r.m;
      }
    } finally {
      db.close();
    }
  } else if (mysql !== undefined) {
    const [t] = await mysql.query<{ id: number; shards: number; format: number }[]>(
      storeUrl,
      "SELECT id, shards, format FROM nb_topics WHERE name = ?",
      [topicName],
    );
    if (t === undefined || Number(t.format) !== 2) return undefined;
    for (let s = 0; s < t.shards; s++) {
      const [r] = await mysql.query<{ n: number; m: number }[]>(
        storeUrl,
        `${COUNT} ${tableOf(MysqlRunLog.tableSql(runTopic(Number(t.id), t.shards), s))}`,
      );
      rows += Number(r?.n ?? 0);
      messages += Number(r?.m ?? 0);
    }
  }
  return { rows, messages };
}
