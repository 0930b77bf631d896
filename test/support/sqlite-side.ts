import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import type { NerveBus } from "../../src/nervebus.js";
import { type LogLine, startLoggingBroker, TestClient } from "./broker.js";

/** A broker on a fresh SQLite file, as withSqliteSide hands it to a test. */
export interface SqliteSide {
  /** The database file. */
  readonly path: string;
  readonly bus: NerveBus;
  readonly client: TestClient;
  /** Every line the broker logged. */
  readonly lines: LogLine[];
  /** Another connection to the file: to hold its write lock or change its tables under the broker. */
  readonly other: Database.Database;
}

/**
 * Runs `fn` against a logging broker on a fresh SQLite file in a temp dir, with a second
 * connection to that file (`otherTimeoutMs`: how long it waits for the broker's locks); then
 * rolls back what that connection left open and removes everything.
 */
export async function withSqliteSide(
  name: string,
  fn: (side: SqliteSide) => Promise<void>,
  otherTimeoutMs = 0,
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), `nb-${name}-`));
  const path = join(dir, "bus.db");
  const lines: LogLine[] = [];
  const bus = await startLoggingBroker(`sqlite:${path}`, lines);
  const client = new TestClient(bus.address);
  const other = new Database(path, { timeout: otherTimeoutMs });
  try {
    await fn({ path, bus, client, lines, other });
  } finally {
    if (other.inTransaction) other.exec("ROLLBACK");
    other.close();
    client.close();
    await bus.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
