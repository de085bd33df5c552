#!/usr/bin/env bash
# Generate the Python stubs of protos/aegis/v1 into services/aegis/v1 (committed).
# --check: generate into a scratch folder and fail if the committed stubs differ.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
out=services
if [ "${1:-}" = "--check" ]; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi
"$PY" -m grpc_tools.protoc -Iprotos --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" protos/aegis/v1/*.proto
if [ "${1:-}" = "--check" ]; then
  if ! diff -r -q -x __init__.py -x __pycache__ "$out/aegis/v1" services/aegis/v1; then
    echo "generated stubs are stale: run bash infra/scripts/gen-protos.sh and commit" >&2
    exit 1
  fi
  echo "stubs match protos"
fi
