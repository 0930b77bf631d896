import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { TestBroker } from "./support/broker.js";

const run = promisify(execFile);
const packageDir = fileURLToPath(new URL("../../", import.meta.url));
const compiledExample = fileURLToPath(new URL("../examples/quickstart.js", import.meta.url));

let broker: TestBroker;

before(async () => {
  broker = await TestBroker.start();
});

after(async () => {
  await broker.dispose();
});

test("the README's quickstart is examples/quickstart.ts, verbatim", () => {
  const readme = readFileSync(`${packageDir}README.md`, "utf8");
  const source = readFileSync(`${packageDir}examples/quickstart.ts`, "utf8");
  const section = readme.slice(readme.indexOf("## Quickstart"));
  const block = /```ts\n([\s\S]*?)```/.exec(section);
  assert.ok(block, "a ```ts block in the Quickstart section");
  assert.equal(block[1], source);
});

test("the quickstart example runs against a real broker", async () => {
  const { stdout } = await run(process.execPath, [compiledExample], {
    env: { ...process.env, NERVEBUS_ADDRESS: broker.address },
    timeout: 30_000,
  });
  const lines = stdout.trim().split("\n");
  assert.deepEqual(
    lines.filter((l) => l.startsWith("published")).map((l) => /seq=(\d+) trace=[0-9a-f]{32}$/.exec(l)?.[1]),
    ["1", "2", "3"],
  );
  assert.deepEqual(lines.filter((l) => l.startsWith("received")).sort(), [
    "received seq=1 data=hello 1 n=1",
    "received seq=2 data=hello 2 n=2",
    "received seq=3 data=hello 3 n=3",
  ]);
});
