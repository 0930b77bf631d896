#!/usr/bin/env bash
# Creates clients/python/.venv with Python 3.11 when it is missing, and installs the nervebus
# package into it (editable) with its test extras (generator, pytest, OpenTelemetry SDK, ruff)
# from PyPI. Idempotent and quick when nothing changed: it does nothing while the stamp file in
# the venv is newer than pyproject.toml. Progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[python setup] %s\n' "$*" >&2; }

venv=.venv
stamp="$venv/.nervebus-setup-stamp"

if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then
  exit 0
fi

# A Python 3.11 interpreter: $PYTHON if set, else python3.11, else python3 when it is 3.11.
find_python() {
  local candidate
  for candidate in "${PYTHON:-}" python3.11 python3; do
    [ -n "$candidate" ] || continue
    command -v "$candidate" >/dev/null 2>&1 || continue
    if "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
  python=$(find_python) || { log "no Python 3.11 found (set PYTHON=/path/to/python3.11)"; exit 1; }
  log "creating $venv with $python ($("$python" --version 2>&1))"
  rm -rf "$venv"
  "$python" -m venv "$venv"
fi

log "pip install -e .[test]"
"$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q -e ".[test]" >&2
touch "$stamp"
log "ready: $venv"
