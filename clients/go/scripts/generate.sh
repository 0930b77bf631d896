#!/usr/bin/env bash
# Regenerates clients/go/gen from proto/ with buf (pinned in the repository's package.json) and
# the pinned local plugins (installed by scripts/setup.sh when missing). Deterministic: the
# output depends only on the proto files and the pinned versions.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
repo="$(cd "$here/../.." && pwd)"
bash "$here/scripts/setup.sh"
cd "$repo"
npx --no-install buf generate --template clients/go/buf.gen.yaml
