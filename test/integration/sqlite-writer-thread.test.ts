import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { brokerSuite } from "./suite.js";

// The broker suite again, with SQLite's writes on the writer thread (--sqlite-writer-thread).
const dir = mkdtempSync(join(tmpdir(), "nb-sqlite-wt-"));
brokerSuite("sqlite-writer-thread", async (name) => `sqlite:${join(dir, `${name.replace(/\W/g, "_")}.db`)}`, {
  sqliteWriterThread: true,
});
