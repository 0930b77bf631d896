#!/usr/bin/env bash
# Sets the release version everywhere it is written, from one argument: VERSION (the one
# source), the broker's package.json and package-lock.json, @nervebus/client's package.json,
# its tracer version (clients/ts/src/tracing.ts), the Python package's _version.py (which
# pyproject.toml reads) and the Go client's Version constant. test/unit/version.test.ts fails
# when any of them differs from VERSION. Usage: bash scripts/set-version.sh 0.2.0
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-}"
# X.Y.Z with an optional pre-release (-rc.1): valid for npm, for PEP 440 after normalization
# (pip reads 0.2.0-rc.1 as 0.2.0rc1) and, with a leading v, as a Go module version.
if ! [[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-(alpha|beta|rc)\.[0-9]+)?$ ]]; then
  echo "usage: $0 X.Y.Z[-rc.N]  (got '${version}')" >&2
  exit 2
fi

printf '%s\n' "$version" >VERSION
node - "$version" <<'JS'
const { readFileSync, writeFileSync } = require("node:fs");
const version = process.argv[2];
const edit = (file, change) => {
  const json = JSON.parse(readFileSync(file, "utf8"));
  change(json);
  writeFileSync(file, `${JSON.stringify(json, null, 2)}\n`);
};
edit("package.json", (p) => (p.version = version));
// Only the version line: this file keeps its hand-made layout.
const client = "clients/ts/package.json";
writeFileSync(client, readFileSync(client, "utf8").replace(/^ {2}"version": "[^"]*"/m, `  "version": "${version}"`));
edit("package-lock.json", (l) => {
  l.version = version;
  l.packages[""].version = version;
  l.packages["clients/ts"].version = version;
});
JS
sed -i -E "s/^const TRACER_VERSION = \"[^\"]*\";/const TRACER_VERSION = \"$version\";/" clients/ts/src/tracing.ts
sed -i -E "s/^__version__ = \"[^\"]*\"/__version__ = \"$version\"/" clients/python/src/nervebus/_version.py
sed -i -E "s/^const Version = \"[^\"]*\"/const Version = \"$version\"/" clients/go/version.go
echo "version $version written; check with: npx tsc -p . && node --test dist/test/unit/version.test.js" >&2
