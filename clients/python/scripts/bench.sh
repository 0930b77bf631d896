#!/usr/bin/env bash
# The Python client's benchmark, bench/bench.py: set-up when needed (scripts/setup.sh), a broker
# build when dist/ is missing, then publish and receive+ack throughput against a broker it starts
# on 127.0.0.1 with a temporary SQLite file. Arguments go to bench.py (--help lists them); the
# JSON report goes to stdout.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$here"

bash scripts/setup.sh

if [ -z "${NERVEBUS_TEST_BROKER_MAIN:-}" ] && [ ! -f "$repo/dist/src/cli/main.js" ]; then
  echo "[python bench] building the broker (dist/ is missing)" >&2
  (cd "$repo" && npx --no-install tsc -p .) >&2
fi

exec .venv/bin/python bench/bench.py "$@"
