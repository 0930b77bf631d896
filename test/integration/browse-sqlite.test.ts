import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { browseSuite } from "./browse-suite.js";

const dir = mkdtempSync(join(tmpdir(), "nb-browse-"));
browseSuite("sqlite", async (name) => `sqlite:${join(dir, `${name.replace(/\W/g, "_")}.db`)}`);
