#!/usr/bin/env bash
# Install what the portal needs, bring the database up to date, load the demo data
# (once), print the demo sign-ins and serve the portal on http://127.0.0.1:8000.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .
bash scripts/translations.sh compile >/dev/null

export PORTAL_ENV="${PORTAL_ENV:-development}"
.venv/bin/flask --app wsgi db upgrade
.venv/bin/flask --app wsgi demo load

# The jobs process (outbox delivery, reminders) runs beside the web server, never
# inside it: each web worker would otherwise run every job.
.venv/bin/python -m jobs &
jobs_pid=$!
trap 'kill "$jobs_pid" 2>/dev/null || true' EXIT INT TERM

echo
echo "Serving the referral portal on http://127.0.0.1:8000 (Ctrl-C to stop)"
echo "Every message the portal writes: http://127.0.0.1:8000/dev/outbox"
# 127.0.0.1:8000, 2 workers of 4 threads; access lines carry the path with link tokens
# redacted, never query strings (gunicorn.conf.py). LOG_FORMAT=json for log shippers.
.venv/bin/gunicorn -c gunicorn.conf.py wsgi:app
