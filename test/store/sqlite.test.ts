import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteStore } from "../../src/store/index.js";
import { storeConformance } from "./conformance.js";

const dir = mkdtempSync(join(tmpdir(), "nb-sqlite-conf-"));
storeConformance("sqlite", {
  fresh: async (name) => `sqlite:${join(dir, `${name.replace(/\W/g, "_")}.db`)}`,
  open: async (url) => SqliteStore.open(url.slice("sqlite:".length)),
});
