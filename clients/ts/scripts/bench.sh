#!/usr/bin/env bash
# The TypeScript client's benchmark (bench/bench.ts): builds the broker when
# dist/src/cli/main.js is missing, builds the package and the benchmark, then publishes and
# receives+acks against a broker on SQLite it starts itself. Prints one JSON object. Flags go to
# the benchmark: --messages N, --bytes B, --window W, --concurrency C, --api, --batch, --help.
set -euo pipefail
pkg="$(cd "$(dirname "$0")/.." && pwd)"
root="$(cd "$pkg/../.." && pwd)"
cd "$pkg"
if [ ! -f "$root/dist/src/cli/main.js" ]; then
  (cd "$root" && npx --no-install tsc -p .) >&2
fi
npx --no-install tsc -p tsconfig.json >&2
npx --no-install tsc -p tsconfig.test.json >&2
exec node dist-test/bench/bench.js "$@"
