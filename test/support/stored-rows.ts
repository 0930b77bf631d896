import assert from "node:assert/strict";
import type mysql from "mysql2/promise";
import { decodeRun } from "../../src/wire/index.js";
import type { TestMysql } from "./mariadb.js";

/** seq → payload of every message stored for `topic`, read straight from its shard tables. */
export async function storedRows(
  server: TestMysql,
  url: string,
  topic: string,
): Promise<Map<number, string>> {
  const [t] = await server.query<mysql.RowDataPacket[]>(
    url,
    "SELECT id, shards, format FROM nb_topics WHERE name = ?",
    [topic],
  );
  assert.ok(t, `topic ${topic} is in the catalog`);
  const out = new Map<number, string>();
  /** Where each seq was found (format 2), to name both runs when one is stored twice. */
  const foundIn = new Map<number, string>();
  for (let shard = 0; shard < Number(t.shards); shard++) {
    if (Number(t.format) === 2) {
      const runs = await server.query<mysql.RowDataPacket[]>(
        url,
        `SELECT first_seq, last_seq, body, ids FROM nb_run_${t.id}_${shard}`,
      );
      for (const r of runs) {
        const run = `run ${Number(r.first_seq)}..${Number(r.last_seq)} of shard ${shard}`;
        for (const m of decodeRun(r.body as Buffer, r.ids as Buffer | null)) {
          assert.equal(
            out.has(m.seq),
            false,
            `seq ${m.seq} of topic ${topic} (id ${t.id}) is stored once: in ${foundIn.get(m.seq)} and in ${run}`,
          );
          out.set(m.seq, Buffer.from(m.data).toString());
          foundIn.set(m.seq, run);
        }
      }
    } else {
      const rows = await server.query<mysql.RowDataPacket[]>(
        url,
        `SELECT seq, data FROM nb_msg_${t.id}_${shard}`,
      );
      for (const r of rows) out.set(Number(r.seq), Buffer.from(r.data as Buffer).toString());
    }
  }
  return out;
}
