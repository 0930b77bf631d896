import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { brokerSuite } from "./suite.js";

const dir = mkdtempSync(join(tmpdir(), "nb-sqlite-it-"));
brokerSuite("sqlite", async (name) => `sqlite:${join(dir, `${name.replace(/\W/g, "_")}.db`)}`);
