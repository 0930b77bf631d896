import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crashSuite } from "./crash-suite.js";

const dir = mkdtempSync(join(tmpdir(), "nb-crash-"));
crashSuite("sqlite", async (name) => `sqlite:${join(dir, `${name}.db`)}`);
