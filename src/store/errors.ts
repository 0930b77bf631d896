import { NerveBusError, OutOfSpaceError } from "../core/index.js";

/**
 * The one place where driver errors (mysql2, better-sqlite3 and the sockets under them) are
 * read, shared by both stores: no other file looks at an error's code. Transient failures
 * become UNAVAILABLE (the write path retries them, a client may retry its call); everything
 * else INTERNAL. Each code names the test that makes the driver produce it, or says why none
 * can here.
 */
const TRANSIENT_CODES = new Set([
  // The server is not there (yet): test/store/mysql-errors.test.ts "connection refused".
  "ECONNREFUSED",
  // The peer reset the connection: test/store/mysql-errors.test.ts "connection reset".
  "ECONNRESET",
  // Not forced here: a statement written while the server's close is arriving; which of EPIPE,
  // ECONNRESET and PROTOCOL_CONNECTION_LOST the driver reports then is a matter of timing.
  "EPIPE",
  // No handshake within connectTimeout: test/store/mysql-errors.test.ts "connect timeout".
  "ETIMEDOUT",
  // The server closed the connection, under a statement or before it: test/store/
  // mysql-errors.test.ts "server gone".
  "PROTOCOL_CONNECTION_LOST",
  // Not forced here: MariaDB answers it to statements that arrive during its shutdown, a window
  // too short to hit from a test (the test server's shutdown shows up as CONNECTION_LOST).
  "ER_SERVER_SHUTDOWN",
  // max_connections reached: test/store/mysql-errors.test.ts "too many connections".
  "ER_CON_COUNT_ERROR",
  // InnoDB asks the client to retry these: test/store/mysql-errors.test.ts "deadlock" and
  // "lock wait timeout".
  "ER_LOCK_DEADLOCK",
  "ER_LOCK_WAIT_TIMEOUT",
  // Another process holds the file's lock: test/store/sqlite-errors.test.ts "second process".
  "SQLITE_BUSY",
  // Not forced here (it takes a failing disk); its extended codes SQLITE_IOERR_* count too.
  // better-sqlite3 gives no errno, so an I/O error is never read as a full disk: SQLite's
  // file layer reports a write that hit ENOSPC as SQLITE_FULL, which is what a full tmpfs
  // showed (test/integration/disk-full-sqlite.test.ts); only its truncate and shared-memory
  // calls would say SQLITE_IOERR_* for it.
  "SQLITE_IOERR",
]);

/**
 * Driver codes that say the disk (or the table's space) is full: writing again helps only once
 * space is freed.
 */
const OUT_OF_SPACE_CODES = new Set([
  // "database or disk is full": test/store/sqlite-errors.test.ts "database full", and a full
  // tmpfs in test/integration/disk-full-sqlite.test.ts.
  "SQLITE_FULL",
  // 1114 "The table '…' is full" (InnoDB out of space, or a table at its size limit):
  // test/store/mysql-errors.test.ts "table full" (a MEMORY table over max_heap_table_size).
  "ER_RECORD_FILE_FULL",
  // 1021 "Disk full (…); waiting for someone to free some space": not forced here (MariaDB
  // 10.11 aborted instead when its disk filled under a broker's writes: README "When the disk
  // fills up").
  "ER_DISK_FULL",
]);

/**
 * MySQL errors that carry the operating system's errno in their text, "errno: 28" /
 * "Errcode: 28" / "Got error 28" (ENOSPC, "No space left on device"), from writing a file,
 * creating a table or the storage engine: not forced here; test/store/mysql-errors.test.ts
 * "errno 28" checks the reading of messages as MariaDB words them.
 */
const ERRNO_CODES = new Set([
  "ER_ERROR_ON_WRITE",
  "ER_GET_ERRNO",
  "ER_CANT_CREATE_TABLE",
  "ER_CANT_CREATE_FILE",
  "ER_ERROR_ON_RENAME",
  "ER_ERROR_ON_CLOSE",
]);
const ENOSPC_TEXT = /\b(?:errno:?|Errcode:?|error)\s+28\b|No space left on device/i;

/** A driver error's code, if it has one. */
function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** Whether a driver error says the disk is full (see OUT_OF_SPACE_CODES and ERRNO_CODES). */
export function isOutOfSpace(err: unknown): boolean {
  if (err instanceof OutOfSpaceError) return true;
  const code = codeOf(err);
  if (code !== undefined && OUT_OF_SPACE_CODES.has(code)) return true;
  if (code === undefined || !ERRNO_CODES.has(code)) return false;
  const text = (err as { sqlMessage?: unknown }).sqlMessage ?? (err as Error).message;
  return typeof text === "string" && ENOSPC_TEXT.test(text);
}

/**
 * mysql2's answer to a statement on a connection that has already failed ("Can't add new
 * command when connection is in closed state") carries no code, only `fatal`; every other fatal
 * error of the driver has one. Transient like the failure before it: test/store/
 * mysql-errors.test.ts "server gone".
 */
function isFailedConnection(err: unknown): boolean {
  return (err as { fatal?: unknown } | null)?.fatal === true && codeOf(err) === undefined;
}

/**
 * A store failure as a domain error: RESOURCE_EXHAUSTED when the disk is full (naming `place`,
 * the file or database, so an operator knows where to free space), UNAVAILABLE for other
 * transient driver errors, INTERNAL for the rest, naming `what` the store was doing; a
 * NerveBusError passes unchanged. `cause` is kept.
 */
export function mapStoreError(err: unknown, what: string, place = "the store's disk"): NerveBusError {
  if (err instanceof NerveBusError) return err;
  const code = codeOf(err);
  const detail = err instanceof Error ? err.message : String(err);
  if (isOutOfSpace(err)) {
    return new OutOfSpaceError(
      place,
      `store is out of disk space (${place}) while ${what}: ${detail}; free space there, then retry`,
      { cause: err },
    );
  }
  const transient =
    code === undefined
      ? isFailedConnection(err)
      : TRANSIENT_CODES.has(code) || code.startsWith("SQLITE_IOERR") || isReadOnlyServer(err);
  if (transient) {
    return new NerveBusError("unavailable", `store unavailable while ${what}: ${detail}`, { cause: err });
  }
  return new NerveBusError("internal", `store failed while ${what}: ${detail}`, { cause: err });
}

/**
 * Whether MySQL refused a connection because its database does not exist (the store then
 * creates it, as SQLite creates its file): test/store/mysql-errors.test.ts "creates its database".
 */
export function isUnknownDatabase(err: unknown): boolean {
  return codeOf(err) === "ER_BAD_DB_ERROR";
}

/**
 * An error opening a SQLite file: the file locked by another process (a second broker) is
 * FAILED_PRECONDITION, since waiting does not help while that broker runs
 * (test/store/sqlite-errors.test.ts "second process"); anything else as mapStoreError.
 */
export function mapSqliteOpenError(err: unknown, path: string): NerveBusError {
  const code = codeOf(err);
  // SQLITE_LOCKED is the same conflict reported within one process (a shared cache).
  if (code === "SQLITE_BUSY" || code === "SQLITE_LOCKED") {
    return new NerveBusError(
      "failed_precondition",
      `store ${path} is in use by another broker process; one broker owns a database at a time`,
      { cause: err },
    );
  }
  return mapStoreError(err, `opening ${path}`, path);
}

// ---- A server that takes no writes (a failover in progress) ----------------------------------

/**
 * What a MySQL server answers to every write once failover tooling has made it read-only (or a
 * Galera node cannot take statements yet). Transient: the name or address the broker dials
 * moves to a server that takes writes, and a new connection reaches it (see ServerPool).
 */
const READ_ONLY_CODES = new Set([
  // 1290 "The MariaDB server is running with the --read-only option so it cannot execute this
  // statement" (MySQL: also --super-read-only), to a user without READ ONLY ADMIN / SUPER:
  // test/store/mysql-read-only.test.ts "read-only server: MariaDB's answer". The same code names
  // other options (--secure-file-priv, --skip-grant-tables), none of which a broker's statement
  // runs into: only the read-only ones count (see isReadOnlyServer).
  "ER_OPTION_PREVENTS_STATEMENT",
  // 1836 "Running in read-only mode" (MySQL, innodb_read_only): not forced here (MariaDB has no
  // such answer); test/store/mysql-read-only.test.ts "…count only with the read-only text" reads
  // MySQL's wording.
  "ER_READ_ONLY_MODE",
  // 1792 "Cannot execute statement in a READ ONLY transaction": MySQL 8 and MariaDB alike, to a
  // write in a read-only transaction. The broker never asks for one, so its sessions are
  // read-only only when the server's default transaction_read_only (MariaDB 10.11:
  // tx_read_only) is ON, a server-wide "take no writes" like read_only, applied to every new
  // session: test/store/mysql-read-only.test.ts "read-only transactions: …" (the error from a
  // session made read-only, and a ServerPool whose new sessions are). read_only and
  // super_read_only themselves answer 1290, above.
  "ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION",
  // 1047 "WSREP has not yet prepared node for application use": a Galera node outside the
  // primary component or still joining; not forced here (test/integration/mysql-galera.test.ts
  // kills nodes, it does not isolate one); the same text test reads its wording. Only with WSREP
  // in its text: the code's own meaning is "unknown command".
  "ER_UNKNOWN_COM_ERROR",
]);

/** Whether a driver error says the server takes no writes now (see READ_ONLY_CODES). */
export function isReadOnlyServer(err: unknown): boolean {
  const code = codeOf(err);
  if (code === undefined || !READ_ONLY_CODES.has(code)) return false;
  const text = String((err as { message?: unknown }).message);
  if (code === "ER_OPTION_PREVENTS_STATEMENT") return /read-only/i.test(text);
  if (code === "ER_UNKNOWN_COM_ERROR") return /WSREP/.test(text);
  return true;
}

/**
 * A read-only server's error as the domain error: UNAVAILABLE naming the server (HOST:PORT as
 * the broker dials it), `cause` kept.
 */
export function readOnlyServerError(err: unknown, server: string): NerveBusError {
  const detail = err instanceof Error ? err.message : String(err);
  return new NerveBusError(
    "unavailable",
    `the MySQL server at ${server} is read-only (${detail}); the broker reconnects until the server there takes writes (after a failover: the new primary), and retries`,
    { cause: err },
  );
}
