import type mysql from "mysql2/promise";
import { NerveBusError, type TopicRecord } from "../../core/index.js";
import { type FencedPool, META_SLOT } from "../mysql/fenced-pool.js";

/** A topic's row in the placement catalog. */
export interface PlacementRow {
  /** The topic's id as the core sees it: stable across moves (each host's own ids differ). */
  readonly id: number;
  readonly name: string;
  /** HostUrl.key of the database holding it. */
  readonly host: string;
}

/**
 * The fence row that placement writes prove, as topics' writes do: topic id 0 never names a
 * topic (AUTO_INCREMENT starts at 1), and a new owner of the first database raises it with
 * every other fence row, so a catalog switch by a broker that lost that database rolls back.
 */
const CATALOG_FENCE: TopicRecord = {
  id: 0,
  name: "(placement catalog)",
  shards: 0,
  format: 2,
  createdAt: 0,
  config: { retentionMs: 0, retentionBytes: 0, dedupWindowMs: 0, ephemeral: false },
};

/**
 * Which topic lives in which database, kept in the first database of `--store` (`nb_placement`).
 * Each database keeps its own topics' tables, lease and fence rows as a single-database store
 * does; this table only routes. Writes here are fenced by the first database's lease; with
 * `--cluster` (`fenced` false) no broker owns the first database, and every write here is safe
 * on its own: placing is INSERT IGNORE, and a switch is conditional and comes only after the
 * move sealed the topic's old copy (see MysqlStore.sealMoved).
 */
export class PlacementCatalog {
  constructor(
    private readonly db: FencedPool,
    private readonly fenced: boolean,
  ) {}

  /** Creates the table; returns true when it was not there before (first start with several hosts). */
  async prepare(): Promise<boolean> {
    return this.db.run("preparing the placement catalog", async () => {
      const [found] = await this.db.query<mysql.RowDataPacket[]>(
        "SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'nb_placement'",
      );
      await this.db.query(`
        CREATE TABLE IF NOT EXISTS nb_placement (
          id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
          name VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
          host VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
          UNIQUE KEY (name)) ENGINE=InnoDB`);
      return Number(found[0]?.n) === 0;
    });
  }

  async get(name: string): Promise<PlacementRow | undefined> {
    const rows = await this.db.run("reading the placement catalog", () =>
      this.db.select("SELECT id, name, host FROM nb_placement WHERE name = ?", [name]),
    );
    return rows.map(toRow)[0];
  }

  async list(): Promise<PlacementRow[]> {
    const rows = await this.db.run("reading the placement catalog", () =>
      this.db.select("SELECT id, name, host FROM nb_placement ORDER BY name", []),
    );
    return rows.map(toRow);
  }

  /** Places topics (an existing name keeps its host); returns the rows as stored. */
  async place(topics: readonly { name: string; host: string }[]): Promise<PlacementRow[]> {
    if (topics.length === 0) return [];
    await this.#write("placing a topic", (conn) =>
      conn.query("INSERT IGNORE INTO nb_placement (name, host) VALUES ?", [
        topics.map((t) => [t.name, t.host]),
      ]),
    );
    const rows = await this.db.run("reading the placement catalog", () =>
      this.db.select("SELECT id, name, host FROM nb_placement WHERE name IN (?)", [
        topics.map((t) => t.name),
      ]),
    );
    return rows.map(toRow);
  }

  /**
   * Removes a topic's row, by its id: after the topic's own fenced delete, so a stale broker's
   * deletion changes nothing; by id, so a topic of that name placed again meanwhile stays.
   */
  async remove(id: number): Promise<void> {
    await this.#write("removing a topic's placement", (conn) =>
      conn.query("DELETE FROM nb_placement WHERE id = ?", [id]),
    );
  }

  /**
   * The switch of a move, in one transaction: the topic's row goes from `from` to `to` only if
   * it is still on `from`. Throws FAILED_PRECONDITION when it is not (moved or deleted meanwhile).
   */
  async switchHost(name: string, from: string, to: string): Promise<void> {
    const switched = await this.#write("switching a topic's host", async (conn) => {
      const [res] = await conn.query<mysql.ResultSetHeader>(
        "UPDATE nb_placement SET host = ? WHERE name = ? AND host = ?",
        [to, name, from],
      );
      return res.affectedRows === 1;
    });
    if (!switched)
      throw new NerveBusError("failed_precondition", `topic ${name} is no longer placed on ${from}`);
  }

  #write<T>(what: string, fn: (conn: mysql.PoolConnection) => Promise<T>): Promise<T> {
    return this.fenced ? this.db.fenced(what, CATALOG_FENCE, META_SLOT, fn) : this.db.unfenced(what, fn);
  }
}

function toRow(r: mysql.RowDataPacket): PlacementRow {
  return { id: Number(r.id), name: String(r.name), host: String(r.host) };
}
