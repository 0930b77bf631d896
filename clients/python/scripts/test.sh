#!/usr/bin/env bash
# The Python client's checks: set-up when needed (scripts/setup.sh), a broker build when
# the repository's dist/ is missing, ruff and mypy, then pytest against real brokers the tests start on
# 127.0.0.1. Exits non-zero on any failure; pytest's summary line is the last line printed.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$here"

bash scripts/setup.sh

if [ -z "${NERVEBUS_TEST_BROKER_MAIN:-}" ] && [ ! -f "$repo/dist/src/cli/main.js" ]; then
  echo "[python test] building the broker (dist/ is missing)" >&2
  (cd "$repo" && npx --no-install tsc -p .) >&2
fi

.venv/bin/ruff check --quiet src tests examples bench >&2
.venv/bin/mypy >&2

exec .venv/bin/python -m pytest -q
