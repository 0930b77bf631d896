#!/usr/bin/env bash
# The NerveBus benchmark suite in one command: builds, then runs what issue 14's "Done when"
# asks, three times (20–25 minutes on 2 cores): the raw per-row and run-row ceilings, the
# no-store ceiling, publish, drain, end-to-end latency and overload on MySQL and SQLite, 100 B
# and 1 KiB, 4 shards, CPU profiles in the last run; results.json holds each figure's mean, min,
# max and relative stdev and every target as a check. Results: bench/results/results.{json,md},
# *.svg, profiles/. Flags: --help (--repeat 1 for one run, --quick for a smoke run).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ]; then
  bash scripts/setup.sh
fi
npx --no-install tsc -p . >&2
exec node dist/bench/suite.js "$@"
