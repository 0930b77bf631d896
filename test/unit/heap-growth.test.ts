import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { test } from "node:test";
import fc from "fast-check";
import {
  GARBAGE_ALLOWANCE_BYTES,
  growingPercentFor,
  growthGivenIn,
  ROOMY_GROWING_PERCENT,
} from "../../src/cli/heap-growth.js";

const MiB = 1 << 20;

test("the growth the pacer sets never lets garbage past the ceiling, and is 0 at or above it", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 4096 }),
      fc.integer({ min: 1, max: 1024 }),
      fc.integer({ min: 1, max: 4096 }),
      (rssMiB, heapMiB, ceilingMiB) => {
        const percent = growingPercentFor(rssMiB * MiB, heapMiB * MiB, ceilingMiB * MiB);
        assert.ok(percent === 0 || (percent >= 100 && percent <= ROOMY_GROWING_PERCENT));
        // The garbage a growth of `percent` lets wait fits below the ceiling.
        assert.ok(rssMiB + (heapMiB * percent) / 100 <= ceilingMiB || percent === 0);
        if (rssMiB >= ceilingMiB) assert.equal(percent, 0);
      },
    ),
  );
});

test("a publishing broker with the default budget gets the roomy growth, one near its bound V8's own", () => {
  const ceiling = 192 * MiB + GARBAGE_ALLOWANCE_BYTES;
  // What a broker at full publish speed held (BENCHMARKS.md): ~180 MB resident, ~25 MB of heap.
  assert.equal(growingPercentFor(180 * MiB, 25 * MiB, ceiling), ROOMY_GROWING_PERCENT);
  // Under overload (1 KiB packs held): ~250 MB resident.
  assert.equal(growingPercentFor(250 * MiB, 40 * MiB, ceiling), 0);
});

test("a growth given on Node's command line is left alone", () => {
  assert.equal(growthGivenIn(["--heap-growing-percent=50"]), true);
  assert.equal(growthGivenIn(["--heap_growing_percent", "50"]), true);
  assert.equal(growthGivenIn(["--max-old-space-size=256", "--trace-gc"]), false);
});

test("this Node's V8 knows --heap-growing-percent (setFlagsFromString ignores unknown flags silently)", () => {
  const options = execFileSync(process.execPath, ["--v8-options"], { encoding: "utf8" });
  assert.match(options, /--heap-growing-percent\b/);
});
