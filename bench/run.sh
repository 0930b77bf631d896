#!/usr/bin/env bash
# The NerveBus benchmark suite in one command (about 8 minutes on 2 cores): builds, then runs
# raw MySQL/SQLite baselines, publish, drain, end-to-end latency, overload and CPU profiles on
# both stores. Results: bench/results/results.{json,md}, *.svg, profiles/. Flags: --help.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ]; then
  bash scripts/setup.sh
fi
npx --no-install tsc -p . >&2
exec node dist/bench/suite.js "$@"
