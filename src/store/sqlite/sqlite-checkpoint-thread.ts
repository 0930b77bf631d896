/**
 * The SQLite checkpoint thread (a worker_threads entry point, started by SqliteCheckpointer):
 * copies the write-ahead log into the database file on a connection of its own, so that copy
 * and its fsyncs never stop the broker's event loop.
 *
 * Each "checkpoint" message runs one PASSIVE checkpoint: as many committed frames as no reader
 * still needs, without waiting for the writer, which goes on committing meanwhile; the writer
 * starts the log over once a checkpoint has copied all of it. The answer says how far it got.
 */
import { parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";
import type { CheckpointerReply } from "./sqlite-checkpointer.js";

const port = parentPort;
const { path } = workerData as { path: string };

function post(msg: CheckpointerReply): void {
  port?.postMessage(msg);
}

function start(): void {
  let db: Database.Database;
  try {
    db = new Database(path, { fileMustExist: true, timeout: 0 });
    // The checkpoint fsyncs the log before it copies and the database file after.
    db.pragma("synchronous = FULL");
  } catch (err) {
    post({ kind: "failed", message: (err as Error).message });
    return;
  }
  port?.on("message", (msg: "checkpoint" | "close") => {
    if (msg === "close") {
      db.close();
      port.close();
      return;
    }
    try {
      const [r] = db.pragma("wal_checkpoint(PASSIVE)") as {
        busy: number;
        log: number;
        checkpointed: number;
      }[];
      post({ kind: "done", logFrames: r?.log ?? 0, copiedFrames: r?.checkpointed ?? 0 });
    } catch (err) {
      // A checkpoint that could not run now (the committing connection's own, past the
      // backstop, holds the lock; a full disk) is tried again at the next request.
      post({ kind: "skipped", message: (err as Error).message });
    }
  });
}

start();
