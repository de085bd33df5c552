#!/usr/bin/env bash
# Set up a fresh machine for AEGIS: a virtualenv in .venv with AEGIS and its tools. Safe to run again.
# Usage: bash infra/scripts/setup.sh [--dev]
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup: AEGIS needs Python >= 3.11 (found: $("$PYTHON" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
extras="[tools]"   # grpcurl for state queries
[ "${1:-}" = "--dev" ] && extras="[dev]"
# torch first, pinned, so that the project's "torch>=2.5,<2.15" is already met and pip never fetches a CUDA build.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0" 2>&1 \
    | grep -v -E "is ignored: it is neither a file nor a directory" || true
  .venv/bin/python -c "import torch" || { echo "setup: installing torch failed" >&2; exit 1; }
fi
# pip prints a warning per local index folder that does not exist; keep the output readable.
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extras}" 2>&1 \
  | grep -v -E "is ignored: it is neither a file nor a directory" || true
.venv/bin/python -c "import aegis" || { echo "setup: installing aegis failed" >&2; exit 1; }
