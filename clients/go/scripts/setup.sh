#!/usr/bin/env bash
# Installs what the Go client needs to generate code and run its tests: the protoc plugins (and
# grpcurl, for the broker's reflection test) at pinned versions into .tools/bin at the repository root (GOBIN, gitignored), then the module's
# dependencies. Idempotent: a plugin is installed only when missing or at another version.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
repo="$(cd "$here/../.." && pwd)"

# The generators and the runtime libraries must match: protoc-gen-go is released with
# google.golang.org/protobuf, protoc-gen-go-grpc emits code for the grpc version in go.mod.
PROTOC_GEN_GO_VERSION="v1.36.12"
PROTOC_GEN_GO_GRPC_VERSION="v1.6.2"
# grpcurl: the reflection test drives it as a user would (test/telemetry/health-reflection.test.ts).
GRPCURL_VERSION="v1.9.3"

export GOBIN="$repo/.tools/bin"
mkdir -p "$GOBIN"

log() { printf '[go setup] %s\n' "$*" >&2; }

if ! command -v go >/dev/null 2>&1; then
  echo "go is not installed; the Go client needs Go 1.26 or later" >&2
  exit 1
fi

# installed_version BINARY prints the version a plugin reports, or nothing when it is missing.
installed_version() {
  if [ -x "$GOBIN/$1" ]; then "$GOBIN/$1" --version 2>/dev/null | awk '{print $NF}'; fi
}

# protoc-gen-go prints "protoc-gen-go v1.36.12"; protoc-gen-go-grpc prints "protoc-gen-go-grpc 1.6.2".
if [ "$(installed_version protoc-gen-go)" != "$PROTOC_GEN_GO_VERSION" ]; then
  log "go install protoc-gen-go@$PROTOC_GEN_GO_VERSION"
  go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
fi
if [ "$(installed_version protoc-gen-go-grpc)" != "${PROTOC_GEN_GO_GRPC_VERSION#v}" ]; then
  log "go install protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
  go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
fi

# grpcurl built by go install reports no version ("dev build"): installed once, at the pin.
if [ ! -x "$GOBIN/grpcurl" ]; then
  log "go install grpcurl@$GRPCURL_VERSION"
  go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION"
fi

# Module dependencies: a no-op (and offline) when the module cache already has them.
cd "$here"
go mod download
