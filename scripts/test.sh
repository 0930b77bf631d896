#!/usr/bin/env bash
# The whole test suite, from a fresh clone: set-up, generated-code check, lint, typecheck,
# the broker's tests on SQLite and on a throwaway MariaDB (test/shutdown/ among them, which runs
# a Go, a Python and a TypeScript publisher across broker restarts), then each client's tests
# and the cross-language test. Exits non-zero when any part fails.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
bash scripts/check-generated.sh
# The API may grow but not break: proto/ is checked against the released v1 image.
npx --no-install buf breaking --against api/nervebus-v1.binpb
npx --no-install biome check .
npx --no-install madge --circular --extensions ts --ts-config tsconfig.json src
npx --no-install tsc -p .

status=0
find dist/test -name "*.test.js" | sort | xargs node --test --test-concurrency=1 --test-timeout=300000 || status=1

for client in clients/*/; do
  if [ -f "${client}scripts/test.sh" ]; then
    echo "== ${client}"
    bash "${client}scripts/test.sh" || status=1
  fi
done
if [ -f test/cross-language/run.sh ]; then
  echo "== cross-language"
  bash test/cross-language/run.sh || status=1
fi
exit $status
