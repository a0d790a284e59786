#!/usr/bin/env bash
# The main job on the embedded default: SQLite in data/, a generated demo caseload, what is due.
# Extra arguments go to 'ehcp demo' (for example --cases 200 --as-of 2026-01-05).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/ehcp demo "$@"
