import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

const root = new URL("../../../", import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), "utf8");

/** The first capture of `pattern` in `path`, or a failure naming the file. */
function find(path: string, pattern: RegExp): string {
  const m = pattern.exec(read(path));
  assert.ok(m?.[1], `${path} has no version matching ${pattern}`);
  return m[1];
}

test("every package carries the version in VERSION (scripts/set-version.sh writes them)", () => {
  const version = read("VERSION").trim();
  assert.match(version, /^\d+\.\d+\.\d+(-(alpha|beta|rc)\.\d+)?$/);
  const lock = JSON.parse(read("package-lock.json")) as {
    version: string;
    packages: Record<string, { version?: string }>;
  };
  const found: Record<string, string | undefined> = {
    "package.json": (JSON.parse(read("package.json")) as { version: string }).version,
    "package-lock.json": lock.version,
    'package-lock.json packages[""]': lock.packages[""]?.version,
    'package-lock.json packages["clients/ts"]': lock.packages["clients/ts"]?.version,
    "clients/ts/package.json": (JSON.parse(read("clients/ts/package.json")) as { version: string }).version,
    "clients/ts/src/tracing.ts": find("clients/ts/src/tracing.ts", /^const TRACER_VERSION = "([^"]+)";$/m),
    "clients/python/src/nervebus/_version.py": find(
      "clients/python/src/nervebus/_version.py",
      /^__version__ = "([^"]+)"$/m,
    ),
    "clients/go/version.go": find("clients/go/version.go", /^const Version = "([^"]+)"$/m),
  };
  for (const [where, v] of Object.entries(found)) assert.equal(v, version, `${where} vs VERSION`);
  // The wheel takes its version from _version.py, never from a second copy in pyproject.toml.
  const pyproject = read("clients/python/pyproject.toml");
  assert.match(pyproject, /^dynamic = \["version"\]$/m);
  assert.match(pyproject, /^path = "src\/nervebus\/_version.py"$/m);
  assert.doesNotMatch(pyproject, /^version = /m);
});
