#!/usr/bin/env bash
# Fails when the committed generated code differs from what the proto files generate now.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/generate.sh
# src/gen is listed although nothing is generated there any more: a stray second TypeScript copy
# (an old buf.gen.yaml) shows up as untracked files and fails the check.
changed=$(git status --porcelain --untracked-files=all -- src/gen src/api/gen clients/ts/src/gen clients/go/gen clients/python/src/nervebus/gen)
if [ -n "$changed" ]; then
  echo "generated code is stale; run 'npm run generate' and commit:" >&2
  echo "$changed" >&2
  exit 1
fi
echo "generated code is up to date"
