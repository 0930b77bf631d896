import type mysql from "mysql2/promise";
import { useTestMysql } from "../support/mariadb.js";
import { corruptRunSuite } from "./corrupt-run-suite.js";

const server = useTestMysql();
corruptRunSuite(
  "mysql",
  (name) => server().database(name),
  async (url, topic, firstSeq, mutate) => {
    const [t] = await server().query<mysql.RowDataPacket[]>(
      url,
      "SELECT id, shards FROM nb_topics WHERE name = ?",
      [topic],
    );
    let changed = 0;
    for (let shard = 0; shard < Number(t!.shards); shard++) {
      const table = `nb_run_${t!.id}_${shard}`;
      const [row] = await server().query<mysql.RowDataPacket[]>(
        url,
        `SELECT body FROM ${table} WHERE first_seq = ?`,
        [firstSeq],
      );
      if (row === undefined) continue;
      await server().query(url, `UPDATE ${table} SET body = ? WHERE first_seq = ?`, [
        mutate(row.body as Buffer),
        firstSeq,
      ]);
      changed++;
    }
    if (changed !== 1) throw new Error(`the run of ${topic} at seq ${firstSeq} was not found`);
  },
);
