#!/usr/bin/env bash
# Lint, type-check and run the whole test suite. Exits non-zero when anything fails.
# Installs PostgreSQL's server binaries when missing and this is a Debian machine run as root,
# so the store is tested against a real PostgreSQL as well as SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing PostgreSQL server binaries ..." >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
      || echo "could not install PostgreSQL: its tests will be skipped" >&2
  fi
fi
# Debian's Chromium for the browser tests (Playwright drives it through executable_path).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Chromium for the browser tests ..." >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "could not install Chromium: the browser tests will be skipped" >&2
  fi
fi
.venv/bin/ruff check engine notifications tests bench
.venv/bin/ruff format --check engine notifications tests bench
.venv/bin/mypy engine notifications
PATH="$PWD/.venv/bin:$PATH" .venv/bin/python -m pytest "$@"
