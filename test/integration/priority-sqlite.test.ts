import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { prioritySuite } from "./priority-suite.js";

const dir = mkdtempSync(join(tmpdir(), "nb-priority-"));
prioritySuite("sqlite", async (name) => `sqlite:${join(dir, `${name.replace(/\W/g, "_")}.db`)}`);
