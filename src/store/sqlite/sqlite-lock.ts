import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { mapSqliteOpenError } from "../errors.js";

/**
 * Takes the lock that makes one broker the owner of a database file: `PATH-lock`, a small
 * SQLite file held in locking_mode=EXCLUSIVE for as long as the returned connection is open.
 * The owner cannot lock the database file itself (its checkpoint thread, or the writer
 * thread's reader, shares it), so a second broker on the same file fails here, at start-up,
 * with FAILED_PRECONDITION.
 */
export function lockSqliteFile(path: string): Database.Database {
  mkdirSync(dirname(path), { recursive: true });
  let db: Database.Database | undefined;
  try {
    db = new Database(`${path}-lock`, { timeout: 0 });
    db.pragma("locking_mode = EXCLUSIVE");
    // A write takes the exclusive lock, which EXCLUSIVE mode then holds until close.
    db.pragma("user_version = 1");
    return db;
  } catch (err) {
    db?.close();
    throw mapSqliteOpenError(err, path);
  }
}
