/** Storage backends behind the core's Store interface. */
import { NerveBusError, type Store } from "../core/index.js";
import { MultiStore } from "./multi/multi-store.js";
import { isMultiHost, parseHostUrls } from "./multi/store-urls.js";
import { MysqlStore } from "./mysql/mysql-store.js";
import type { StoreLeaseOptions } from "./mysql/open-pool.js";
import { SqliteStore } from "./sqlite/sqlite-store.js";
import { SqliteThreadedStore } from "./sqlite/sqlite-threaded-store.js";

export { runsOverlappingSql } from "./codec.js";
export { isOutOfSpace, mapStoreError } from "./errors.js";
export { MultiStore } from "./multi/multi-store.js";
export { MysqlOutboxSource } from "./mysql/mysql-outbox.js";
export { MysqlRunLog } from "./mysql/mysql-run-log.js";
export { MysqlStore } from "./mysql/mysql-store.js";
export { OUTBOX_TABLES } from "./mysql/outbox-schema.js";
export { SqliteRunLog } from "./sqlite/sqlite-run-log.js";
export { SqliteStore } from "./sqlite/sqlite-store.js";
export { SqliteThreadedStore } from "./sqlite/sqlite-threaded-store.js";

/** How to open either store: the MySQL pool's settings, and its lease's (see StoreLeaseOptions). */
export interface OpenStoreOptions extends StoreLeaseOptions {
  /** MysqlStoreOptions.poolSize. */
  readonly mysqlPoolSize: number;
  /** MysqlStoreOptions.stallMs. */
  readonly mysqlStallTimeoutMs?: number;
  /** MysqlStoreOptions.cutoff: aborted when a shutdown's grace is over. */
  readonly cutoff?: AbortSignal;
  /** MysqlStoreOptions.allowUnsafeDurability. */
  readonly mysqlAllowUnsafeDurability: boolean;
  /** SQLite: run writes on a thread of their own (SqliteThreadedStore); not for :memory:. */
  readonly sqliteWriterThread?: boolean;
}

/**
 * Opens the store named by a URL: `sqlite:PATH` or `mysql://USER:PASS@HOST:PORT/DB`, or several
 * MySQL URLs, comma-separated, for topics spread over those databases (see MultiStore).
 */
export async function openStore(url: string, options: OpenStoreOptions): Promise<Store> {
  if (isMultiHost(url)) {
    const hosts = parseHostUrls(url);
    return MultiStore.open(hosts, {
      ...options,
      poolSize: options.mysqlPoolSize,
      ...(options.mysqlStallTimeoutMs === undefined ? {} : { stallMs: options.mysqlStallTimeoutMs }),
      allowUnsafeDurability: options.mysqlAllowUnsafeDurability,
    });
  }
  if (url.startsWith("sqlite:")) {
    if (options.cluster)
      throw new NerveBusError(
        "invalid_argument",
        "--cluster: brokers share a MySQL store; SQLite is one process's file",
      );
    const path = url.slice("sqlite:".length);
    if (path === "")
      throw new NerveBusError(
        "invalid_argument",
        "store: sqlite: needs a file path, e.g. sqlite:./data/nervebus.db",
      );
    return options.sqliteWriterThread === true && path !== ":memory:"
      ? SqliteThreadedStore.open(path, undefined, options.log)
      : SqliteStore.open(path, "exclusive", options.log);
  }
  if (url.startsWith("mysql://")) {
    return MysqlStore.open({
      ...options,
      url,
      poolSize: options.mysqlPoolSize,
      ...(options.mysqlStallTimeoutMs === undefined ? {} : { stallMs: options.mysqlStallTimeoutMs }),
      allowUnsafeDurability: options.mysqlAllowUnsafeDurability,
    });
  }
  throw new NerveBusError(
    "invalid_argument",
    `store: ${JSON.stringify(url)} is neither sqlite:PATH nor mysql://USER:PASS@HOST:PORT/DB`,
  );
}
