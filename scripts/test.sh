#!/usr/bin/env bash
# Install everything the tests need (Chromium and PostgreSQL from Debian, Python
# packages into .venv), then run the whole suite twice: on SQLite, then on PostgreSQL.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -x -k timeline`.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != "0" ]; then
    echo "The tests need: ${missing[*]}. Install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
bash scripts/translations.sh compile >/dev/null

.venv/bin/ruff check portal jobs tests migrations scripts wsgi.py

postgres_url=$(bash scripts/test-postgres.sh)
case "$postgres_url" in
  postgresql+psycopg://*) ;;
  *) echo "scripts/test-postgres.sh printed no database URL: [$postgres_url]" >&2; exit 1 ;;
esac

echo "== Test suite on SQLite =="
.venv/bin/python -m pytest "$@"
echo "== Test suite on PostgreSQL =="
TEST_DATABASE_URL="$postgres_url" .venv/bin/python -m pytest "$@"
