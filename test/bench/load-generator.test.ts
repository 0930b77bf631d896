import assert from "node:assert/strict";
import { test } from "node:test";
import { paceLoadGenerator } from "../../bench/lib/load-generator.js";

test("the load generator keeps a heap growth node was started with, and says which it runs with", () => {
  assert.equal(paceLoadGenerator(["--heap-growing-percent=150"]), "node's --heap-growing-percent=150");
  assert.equal(paceLoadGenerator(["--heap_growing_percent", "120"]), "node's --heap_growing_percent");
  assert.equal(paceLoadGenerator([]), "--heap-growing-percent=200 (the broker's own)");
});
