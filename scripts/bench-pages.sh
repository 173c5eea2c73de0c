#!/usr/bin/env bash
# The page benchmark (not part of the tests): the portal's pages against a bare Flask +
# SQLAlchemy app on the same database and gunicorn settings, requests/s and their ratio.
#   bash scripts/bench-pages.sh                    # SQLite, 10 s a run, 3 rounds
#   bash scripts/bench-pages.sh --seconds 3        # a quicker look
#   bash scripts/bench-pages.sh --database-url "$(bash scripts/test-postgres.sh portal_bench_pages)"
#                                                  # PostgreSQL (the database is emptied);
#                                                  # or BENCH_PAGES_DATABASE_URL=...
# More options: .venv/bin/python scripts/bench_pages.py --help. Exit 0 whatever the
# figures, 1 when a page answered wrongly (a redirect to sign-in, a 500).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install --quiet -e '.[test]'
bash scripts/translations.sh compile >/dev/null
if ! command -v wrk >/dev/null && [ "$(id -u)" = 0 ]; then
  { apt-get install -y -qq wrk || { apt-get update -qq && apt-get install -y -qq wrk; }; } \
    >/dev/null 2>&1 || echo "wrk did not install: the Python load tool measures instead" >&2
fi

# The driver runs in the background so that this script's trap runs at once on Ctrl-C
# or a kill: it stops the driver (which stops its servers), then any server left behind.
pid_file=$(mktemp)
driver=
stop() {
  if [ -n "$driver" ] && kill -0 "$driver" 2>/dev/null; then
    kill -TERM "$driver" 2>/dev/null || true
    wait "$driver" 2>/dev/null || true
  fi
  while read -r pid; do
    kill -TERM "$pid" 2>/dev/null || true
  done <"$pid_file"
  rm -f "$pid_file"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

.venv/bin/python scripts/bench_pages.py --pid-file "$pid_file" "$@" &
driver=$!
status=0
wait "$driver" || status=$?
driver=
exit "$status"
