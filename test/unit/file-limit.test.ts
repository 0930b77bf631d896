import assert from "node:assert/strict";
import { test } from "node:test";
import { FD_RESERVE, fileLimitProblem, openFileLimit } from "../../src/api/connection-limits.js";

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max processes             94323                94323                processes
Max open files            4096                 4096                 files
Max locked memory         8388608              8388608              bytes
`;

test("the open-file limit is read from /proc/self/limits; nothing when it says unlimited or is missing", () => {
  assert.equal(openFileLimit(LIMITS), 4096);
  assert.equal(
    openFileLimit(LIMITS.replace("4096                 4096", "unlimited            unlimited")),
    undefined,
  );
  assert.equal(openFileLimit(""), undefined);
});

test("connection caps that do not fit in the open-file limit are named with the most --max-open-connections may be", () => {
  assert.equal(fileLimitProblem(20_000, 10_000, 256), undefined, "the defaults fit in 20,000");
  assert.equal(fileLimitProblem(undefined, 10_000, 256), undefined, "an unknown limit says nothing");
  assert.equal(fileLimitProblem(4096 + 10_000, 4096 - 256 - FD_RESERVE, 256), undefined);
  const problem = fileLimitProblem(4096, 10_000, 256);
  assert.match(String(problem), /--max-open-connections \(10000\) plus --http-max-connections \(256\)/);
  assert.match(String(problem), /open-file limit \(4096\)/);
  assert.match(
    String(problem),
    new RegExp(`lower --max-open-connections to ${4096 - 256 - FD_RESERVE} at most`),
  );
});
