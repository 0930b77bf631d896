import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { publishStreamSuite } from "./publish-stream-suite.js";

const dir = mkdtempSync(join(tmpdir(), "nb-publish-stream-"));
publishStreamSuite("sqlite", async (name) => `sqlite:${join(dir, `${name.replace(/\W/g, "_")}.db`)}`);
