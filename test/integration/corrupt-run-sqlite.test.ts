import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { corruptRunSuite } from "./corrupt-run-suite.js";

const dir = mkdtempSync(join(tmpdir(), "nb-corrupt-"));
corruptRunSuite(
  "sqlite",
  async (name) => `sqlite:${join(dir, `${name.replace(/\W/g, "_")}.db`)}`,
  async (url, topic, firstSeq, mutate) => {
    const db = new Database(url.slice("sqlite:".length));
    try {
      const t = db.prepare("SELECT id, shards FROM nb_topics WHERE name = ?").get(topic) as {
        id: number;
        shards: number;
      };
      let changed = 0;
      for (let shard = 0; shard < t.shards; shard++) {
        const table = `nb_run_${t.id}_${shard}`;
        const row = db.prepare(`SELECT body FROM ${table} WHERE first_seq = ?`).get(firstSeq) as
          | { body: Buffer }
          | undefined;
        if (row === undefined) continue;
        changed += db
          .prepare(`UPDATE ${table} SET body = ? WHERE first_seq = ?`)
          .run(mutate(row.body), firstSeq).changes;
      }
      if (changed !== 1) throw new Error(`the run of ${topic} at seq ${firstSeq} was not found`);
    } finally {
      db.close();
    }
  },
);
