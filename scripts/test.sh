#!/usr/bin/env bash
# The whole test suite, from a fresh clone: set-up, generated-code check, lint, typecheck,
# the broker's tests on SQLite and on a throwaway MariaDB (test/shutdown/ among them, which runs
# a Go, a Python and a TypeScript publisher across broker restarts), then each client's tests,
# the cross-language test, and the packaging test (which builds the release artifacts). Exits
# non-zero when any part fails.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
bash scripts/check-generated.sh
# The API may grow but not break: proto/ is checked against the released v1 image.
npx --no-install buf breaking --against api/nervebus-v1.binpb
npx --no-install biome check .
npx --no-install madge --circular --extensions ts --ts-config tsconfig.json src bench test
npx --no-install tsc -p .

status=0
# test/packaging runs last, on its own (below).
find dist/test -name "*.test.js" -not -path "dist/test/packaging/*" | sort |
  xargs node --test --test-concurrency=1 --test-timeout=300000 || status=1

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
# CI's build of the release artifacts (scripts/build-artifacts.sh into dist/artifacts), then each
# client installed from them into a new project outside the repository, running its README's
# examples against a real broker.
echo "== packaging"
node --test --test-concurrency=1 --test-timeout=600000 dist/test/packaging/*.test.js || status=1
exit $status
