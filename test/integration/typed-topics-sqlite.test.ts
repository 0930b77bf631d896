import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { typedTopicsSuite } from "./typed-topics-suite.js";

const dir = mkdtempSync(join(tmpdir(), "nb-typed-"));
typedTopicsSuite("sqlite", async (name) => `sqlite:${join(dir, `${name.replace(/\W/g, "_")}.db`)}`);
