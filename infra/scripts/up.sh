#!/usr/bin/env bash
# Set up (if needed) and run every AEGIS service locally on embedded PostgreSQL and Redis: `aegis up`.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash infra/scripts/setup.sh
exec .venv/bin/aegis up "$@"
