import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { envName, flagName, OPTIONS } from "../../src/config/index.js";

const readme = readFileSync(new URL("../../../README.md", import.meta.url), "utf8");

test("the README's configuration table lists every setting with its flag and variable", () => {
  for (const o of OPTIONS) {
    const row = readme.split("\n").find((l) => l.startsWith(`| \`--${flagName(o.key)}\` |`));
    assert.ok(row, `README lacks a row for --${flagName(o.key)}`);
    assert.ok(row.includes(`\`${envName(o.key)}\``), `row of --${flagName(o.key)} names ${envName(o.key)}`);
  }
});

test("the README names the two commands and .ci/run runs the test one", () => {
  assert.match(readme, /npm start\s/);
  assert.match(readme, /npm test\s/);
  const ci = readFileSync(new URL("../../../.ci/run", import.meta.url), "utf8");
  assert.match(ci, /^npm test$/m);
});
