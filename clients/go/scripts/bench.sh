#!/usr/bin/env bash
# The Go client's benchmark (bench_test.go, BenchmarkPublishReceive): publishes, then receives
# and acks, N messages of 100 B and of 1 KiB against a broker on SQLite it starts itself, and
# prints Go's benchmark lines with each phase's msg/s and CPU µs per message of the client and
# the broker. N is the first argument (default 200000); more arguments go to `go test`.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
repo="$(cd "$here/../.." && pwd)"
bash "$here/scripts/setup.sh" >&2
if [ ! -f "$repo/dist/src/cli/main.js" ]; then
  (cd "$repo" && npx --no-install tsc -p . >&2)
fi
n="${1:-200000}"
if ! [[ "$n" =~ ^[1-9][0-9]*$ ]]; then
  echo "bench.sh: the message count must be a positive whole number, got \"$n\"" >&2
  exit 2
fi
shift || true
cd "$here"
exec go test -run '^$' -bench PublishReceive -benchtime "${n}x" -count 1 -timeout 20m "$@" .
