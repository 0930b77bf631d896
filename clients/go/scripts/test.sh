#!/usr/bin/env bash
# The Go client's checks: set-up when needed, the broker build when dist/ lacks it, then
# `go vet ./...` and `go test ./...` (the tests start their own brokers on 127.0.0.1). Exits
# non-zero on failure; the output ends with go test's summary.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
repo="$(cd "$here/../.." && pwd)"

# setup.sh is quick when everything is installed already.
bash "$here/scripts/setup.sh"

if [ ! -f "$repo/dist/src/cli/main.js" ]; then
  echo "[go test] building the broker (npx tsc -p .)" >&2
  (cd "$repo" && npx --no-install tsc -p . >&2)
fi

cd "$here"
echo "[go test] go vet ./..." >&2
go vet ./...
# With the race detector unless NERVEBUS_GO_RACE=0 (its first build takes about a minute).
race=(-race)
if [ "${NERVEBUS_GO_RACE:-1}" = "0" ]; then race=(); fi
go test "${race[@]}" -count=1 -timeout 240s ./...
