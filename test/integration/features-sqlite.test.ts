import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { featuresSuite } from "./features-suite.js";

const dir = mkdtempSync(join(tmpdir(), "nb-features-"));
featuresSuite("sqlite", async (name) => `sqlite:${join(dir, `${name.replace(/\W/g, "_")}.db`)}`);
