import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";

const dir = new URL("../../../src/wire/", import.meta.url);

test("src/wire is a leaf: it imports nothing from core, api or any other layer", () => {
  const files = readdirSync(dir).filter((f) => f.endsWith(".ts"));
  assert.ok(files.includes("index.ts"));
  for (const file of files) {
    const source = readFileSync(new URL(file, dir), "utf8");
    for (const [, from] of source.matchAll(/(?:from|import) "([^"]+)"/g)) {
      const local = from!.startsWith(".");
      assert.ok(
        !local || from!.startsWith("./") || from!.startsWith("../../clients/ts/src/gen/"),
        `${file} imports ${from}; only wire's own files and the generated code are allowed`,
      );
    }
  }
});
