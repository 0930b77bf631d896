#!/usr/bin/env bash
# Tests of the TypeScript client against real brokers on 127.0.0.1: builds the broker when
# dist/src/cli/main.js is missing, builds the package and its tests and examples, then runs
# `node --test` on the compiled test files. Exits non-zero when any step or test fails.
set -euo pipefail
pkg="$(cd "$(dirname "$0")/.." && pwd)"
root="$(cd "$pkg/../.." && pwd)"
cd "$pkg"

if [ ! -f "$root/dist/src/cli/main.js" ]; then
  echo "== building the broker"
  (cd "$root" && npx --no-install tsc -p .)
fi

echo "== building @nervebus/client"
rm -rf dist dist-test
npx --no-install tsc -p tsconfig.json
npx --no-install tsc -p tsconfig.test.json

echo "== node --test"
# Each file starts its own broker; two files run at a time. Every test is bounded, and the
# run is cut off after 85 s, so even with both builds the script ends within two minutes
# (the tests normally take about 20 s).
mapfile -t files < <(find dist-test/test -maxdepth 1 -name "*.test.js" | sort)
timeout --signal=TERM --kill-after=5 85 \
  node --test --test-concurrency=2 --test-timeout=60000 "${files[@]}"
