import type * as grpc from "@grpc/grpc-js";
import type mysql from "mysql2/promise";
import type { TestMysql } from "./mariadb.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The advertised address of each topic's live owner in one database, read from its lease and
 * broker tables (a moved topic's sealed row names no broker, so it is left out).
 */
export async function liveOwners(server: TestMysql, url: string): Promise<Map<string, string>> {
  const rows = await server.query<mysql.RowDataPacket[]>(
    url,
    `SELECT t.name, b.address FROM nb_lease l JOIN nb_topics t ON l.unit = CONCAT('topic:', t.id)
       JOIN nb_brokers b ON b.id = l.owner
       WHERE l.expires_at > CAST(ROUND(UNIX_TIMESTAMP(NOW(3)) * 1000) AS SIGNED)`,
  );
  return new Map(rows.map((r) => [String(r.name), String(r.address)]));
}

/** Retries `fn` on UNAVAILABLE (what clients do) until it succeeds or `ms` pass. */
export async function retrying<T>(fn: () => Promise<T>, ms = 20_000): Promise<T> {
  const until = performance.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if ((err as grpc.ServiceError).code !== 14 || performance.now() > until) throw err;
      await sleep(100);
    }
  }
}

/** p-th quantile (0..1) of ascending `sorted`. */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;
}
