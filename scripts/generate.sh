#!/usr/bin/env bash
# Regenerates all code from proto/: the TypeScript shared by the broker and the TypeScript client
# (one copy, clients/ts/src/gen; buf.gen.yaml), then each client's own generator
# (clients/*/scripts/generate.sh), and the descriptor set server reflection serves
# (scripts/generate-descriptor-set.sh). Generated code is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
npx --no-install buf lint
npx --no-install buf generate
bash scripts/generate-descriptor-set.sh
for client in clients/*/; do
  if [ -f "${client}scripts/generate.sh" ]; then bash "${client}scripts/generate.sh"; fi
done
