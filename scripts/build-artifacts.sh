#!/usr/bin/env bash
# Builds the clients' release artifacts into one folder (dist/artifacts, or the folder given):
#   nervebus-client-<version>.tgz   @nervebus/client: `npm pack` of clients/ts, whose prepack
#                                   script builds dist/ (the JavaScript and its .d.ts types) afresh
#   nervebus-<version>.tar.gz       the Python sdist and the wheel built from it (`python -m
#   nervebus-<version>-py3-none-any.whl   build`, so a wheel proves the sdist complete)
#   go/                             the Go module as a module proxy serves it:
#                                   go/github.com/nervebus/nervebus/clients/go/@v/v<version>.{zip,mod,info}
#                                   and @v/list (scripts/go-module-zip, golang.org/x/mod/zip)
#   SHA256SUMS                      the checksum of each file above
# The version is the VERSION file's. Prints the folder. Registries only (npm for nothing,
# PyPI for the isolated build environment's hatchling, the Go proxy for golang.org/x/mod).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
out="${1:-dist/artifacts}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
version="$(tr -d '[:space:]' <VERSION)"

log() { printf '[artifacts] %s\n' "$*" >&2; }

find "$out" -mindepth 1 -delete

log "npm pack @nervebus/client $version"
# Its prepack script builds dist/ afresh, so files of a removed source file cannot ship.
npm pack --silent -w @nervebus/client --pack-destination "$out" >/dev/null

log "python -m build clients/python"
bash clients/python/scripts/setup.sh
clients/python/.venv/bin/python -m build --outdir "$out" clients/python >&2

log "Go module zip v$version"
# The .info time is the release commit's, so the same commit gives the same files.
stamp="$(git log -1 --format=%cI 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)"
if [ -n "$(git status --porcelain --untracked-files=all -- clients/go 2>/dev/null)" ]; then
  log "warning: clients/go has uncommitted files; the zip holds them as they are on disk"
fi
(cd scripts/go-module-zip && go run . -dir "$repo/clients/go" -version "v$version" -time "$stamp" -out "$out/go" >/dev/null)

(cd "$out" && find . -type f ! -name SHA256SUMS | sort | xargs sha256sum >SHA256SUMS)
echo "$out"
