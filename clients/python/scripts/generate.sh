#!/usr/bin/env bash
# Regenerates the Python protobuf and gRPC modules of the repository's proto/ into
# src/nervebus/gen/nervebus/v1/ (*_pb2.py, *_pb2.pyi stubs, *_pb2_grpc.py). The output is
# committed and must be deterministic: CI regenerates and fails on any difference.
#
# buf's local plugins generate the other languages. grpcio-tools ships protoc and its Python
# and gRPC plugins built into one Python module instead of as plugin binaries that buf could
# call, so this script runs `python -m grpc_tools.protoc` from the client's venv directly (the
# versions come from pyproject.toml's pins), with the well-known types bundled in grpcio-tools.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$here"

bash scripts/setup.sh
py="$here/.venv/bin/python"
wkt="$("$py" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')"

out="$here/src/nervebus/gen"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Paths relative to the proto root, sorted, so the command (and its output) never depends on
# the order the file system lists them in.
protos=$(cd "$repo/proto" && find nervebus -name '*.proto' | LC_ALL=C sort)
# shellcheck disable=SC2086
(cd "$repo/proto" && "$py" -m grpc_tools.protoc -I . -I "$wkt" \
  --python_out="$tmp" --pyi_out="$tmp" --grpc_python_out="$tmp" $protos)

# protoc maps the proto file nervebus/v1/x.proto to the Python module nervebus.v1.x_pb2 and
# writes imports between generated modules in that form. Python has no option to prefix that
# path, and here the modules live in nervebus.gen.nervebus.v1 (inside the nervebus package), so
# the imports of generated modules are rewritten: only lines that start with
# `from nervebus.` (never google.protobuf imports), the same way on every run.
"$py" - "$tmp" <<'PY'
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1])
pattern = re.compile(r"^from nervebus\.(\S+) import ", re.MULTILINE)
for path in sorted(root.rglob("*")):
    if path.suffix not in {".py", ".pyi"}:
        continue
    text = path.read_text(encoding="utf-8")
    new = pattern.sub(lambda m: f"from nervebus.gen.nervebus.{m.group(1)} import ", text)
    if new != text:
        path.write_text(new, encoding="utf-8")
PY

# Packages: one __init__.py per folder, with fixed content.
init_doc() { printf '"""%s"""\n' "$1" > "$2"; }
init_doc "Generated protobuf and gRPC modules of the NerveBus API (by scripts/generate.sh; do not edit)." "$tmp/__init__.py"
for dir in $(cd "$tmp" && find nervebus -type d | LC_ALL=C sort); do
  init_doc "Generated from proto/${dir}/ by scripts/generate.sh; do not edit." "$tmp/$dir/__init__.py"
done

rm -rf "$out"
mkdir -p "$out"
cp -R "$tmp/." "$out/"
"$py" -c 'import nervebus.gen.nervebus.v1.publisher_pb2_grpc, nervebus.gen.nervebus.v1.subscriber_pb2_grpc'
echo "generated $(cd "$out" && find . -type f -name '*.py*' | wc -l | tr -d ' ') files in ${out#"$repo"/}" >&2
