/**
 * The SQLite writer thread (a worker_threads entry point, started by SqliteThreadedStore): owns
 * the database's one write connection and runs every write there, so a transaction's fsync
 * blocks this thread and never the broker's event loop.
 *
 * The broker sends batches of writes, one at a time. A batch's writes run in the order given;
 * consecutive inserts share one transaction (one fsync), as inserts of one event-loop turn do
 * in the in-thread store. Each write's outcome goes back only after its commit.
 */
import { parentPort, workerData } from "node:worker_threads";
import { SqliteStore } from "./sqlite-store.js";
import { type FromWriter, sendError, type WriteOp, type WriteResult } from "./sqlite-writer-protocol.js";

const port = parentPort;
const { path } = workerData as { path: string };

function post(msg: FromWriter): void {
  port?.postMessage(msg);
}

async function runBatch(store: SqliteStore, ops: readonly WriteOp[]): Promise<WriteResult[]> {
  const pending = ops.map((op) => {
    // Inserts queue for one transaction; any other write commits them first, keeping order.
    if (op.method !== "insertEncoded") store.flushInserts();
    const method = store[op.method] as (...args: readonly unknown[]) => Promise<unknown>;
    return method.apply(store, op.args);
  });
  store.flushInserts();
  const settled = await Promise.allSettled(pending);
  return settled.map((s, i) =>
    s.status === "fulfilled"
      ? { ok: true, value: s.value }
      : { ok: false, error: sendError(s.reason, `running ${ops[i]!.method}`) },
  );
}

function start(): void {
  let store: SqliteStore;
  try {
    store = SqliteStore.open(path, "writer");
  } catch (err) {
    post({ kind: "open-failed", error: sendError(err, `opening ${path}`) });
    return;
  }
  port?.on("message", (ops: readonly WriteOp[]) => {
    void runBatch(store, ops).then((results) => {
      post({ kind: "done", results });
      // After close, nothing is left to write: let the thread end.
      if (ops.some((op) => op.method === "close")) port.close();
    });
  });
  post({ kind: "ready" });
}

start();
