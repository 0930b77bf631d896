import { NerveBusError } from "../core/index.js";

/**
 * The one place where driver errors become domain errors, shared by both stores. Transient
 * failures become "unavailable" (the write path retries them); everything else "internal".
 */
const TRANSIENT_CODES = new Set([
  // Connection-level: the server went away or is not there yet (test/mysql-store: restart).
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "PROTOCOL_CONNECTION_LOST",
  "PROTOCOL_SEQUENCE_TIMEOUT",
  "ER_SERVER_SHUTDOWN",
  "ER_CON_COUNT_ERROR",
  // InnoDB asks the client to retry these.
  "ER_LOCK_DEADLOCK",
  "ER_LOCK_WAIT_TIMEOUT",
  // SQLite: disk full or I/O error; may pass once space is freed.
  "SQLITE_FULL",
  "SQLITE_IOERR",
  "SQLITE_BUSY",
]);

export function mapStoreError(err: unknown, what: string): NerveBusError {
  if (err instanceof NerveBusError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const detail = err instanceof Error ? err.message : String(err);
  if (typeof code === "string" && (TRANSIENT_CODES.has(code) || code.startsWith("SQLITE_IOERR"))) {
    return new NerveBusError("unavailable", `store unavailable while ${what}: ${detail}`, { cause: err });
  }
  return new NerveBusError("internal", `store failed while ${what}: ${detail}`, { cause: err });
}
