#!/usr/bin/env bash
# The main job on the embedded default: SQLite in data/, a generated demo caseload, what is due,
# then the staff web application on http://127.0.0.1:8080/ with the demo sign-ins printed (Ctrl-C
# stops it). Extra arguments go to 'ehcp demo' (for example --cases 200 --as-of 2026-01-05);
# --no-serve seeds and sweeps without serving.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
serve=1
args=()
for a in "$@"; do
  if [ "$a" = "--no-serve" ]; then serve=0; else args+=("$a"); fi
done
.venv/bin/ehcp demo "${args[@]}"
if [ "$serve" = 1 ]; then
  echo
  echo "Serving the staff web application; sign in with a demo account above, and the code from"
  echo "'.venv/bin/ehcp staff code casey.demo' (Ctrl-C stops)."
  exec .venv/bin/ehcp serve
fi
