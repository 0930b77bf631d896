/** Storage backends behind the core's Store interface. */
import { NerveBusError, type Store } from "../core/index.js";
import { MysqlStore } from "./mysql/mysql-store.js";
import { SqliteStore } from "./sqlite/sqlite-store.js";

export { mapStoreError } from "./errors.js";
export { MysqlStore } from "./mysql/mysql-store.js";
export { SqliteStore } from "./sqlite/sqlite-store.js";

export interface OpenStoreOptions {
  readonly mysqlPoolSize: number;
  readonly mysqlAllowUnsafeDurability: boolean;
  /** MySQL store lease timing (see MysqlStoreOptions). */
  readonly leaseTtlMs?: number;
  readonly leaseRenewMs?: number;
  readonly leaseWaitMs?: number;
  /** Called once if another broker takes the database over: this one must stop serving. */
  readonly onOwnershipLost?: (err: NerveBusError) => void;
  readonly log: (level: "warn" | "info" | "error", msg: string, fields?: Record<string, unknown>) => void;
}

/** Opens the store named by a URL: `sqlite:PATH` or `mysql://USER:PASS@HOST:PORT/DB`. */
export async function openStore(url: string, options: OpenStoreOptions): Promise<Store> {
  if (url.startsWith("sqlite:")) {
    const path = url.slice("sqlite:".length);
    if (path === "")
      throw new NerveBusError(
        "invalid_argument",
        "store: sqlite: needs a file path, e.g. sqlite:./data/nervebus.db",
      );
    return SqliteStore.open(path);
  }
  if (url.startsWith("mysql://")) {
    return MysqlStore.open({
      url,
      poolSize: options.mysqlPoolSize,
      allowUnsafeDurability: options.mysqlAllowUnsafeDurability,
      ...(options.leaseTtlMs === undefined ? {} : { leaseTtlMs: options.leaseTtlMs }),
      ...(options.leaseRenewMs === undefined ? {} : { leaseRenewMs: options.leaseRenewMs }),
      ...(options.leaseWaitMs === undefined ? {} : { leaseWaitMs: options.leaseWaitMs }),
      ...(options.onOwnershipLost === undefined ? {} : { onOwnershipLost: options.onOwnershipLost }),
      log: options.log,
    });
  }
  throw new NerveBusError(
    "invalid_argument",
    `store: ${JSON.stringify(url)} is neither sqlite:PATH nor mysql://USER:PASS@HOST:PORT/DB`,
  );
}
