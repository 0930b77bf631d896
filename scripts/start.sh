#!/usr/bin/env bash
# `npm start`: installs what is missing, builds, and runs the broker on the embedded SQLite
# store (./data/nervebus.db) at 127.0.0.1:7070. Extra arguments go to `nervebus serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm install --no-audit --no-fund >&2
fi
npx --no-install tsc -p . >&2
exec node dist/src/cli/main.js serve "$@"
