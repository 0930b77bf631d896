/**
 * A SQLite writer thread that crashes: it opens the file as the real one does, answers ready,
 * and ends its thread abruptly at the first batch of writes, answering none of them.
 */
import { parentPort, workerData } from "node:worker_threads";
import { SqliteStore } from "../../src/store/index.js";

SqliteStore.open((workerData as { path: string }).path, "writer");
parentPort?.on("message", () => process.exit(3));
parentPort?.postMessage({ kind: "ready" });
