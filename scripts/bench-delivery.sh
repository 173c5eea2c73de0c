#!/usr/bin/env bash
# The delivery benchmark (not part of the tests): 1,000 emails queued in a scratch
# database, one jobs process delivering them to a local SMTP sink, messages per second.
#   bash scripts/bench-delivery.sh                       # SQLite
#   bash scripts/bench-delivery.sh "$(bash scripts/test-postgres.sh portal_bench_delivery)"
#                                                        # SQLite, then PostgreSQL (emptied)
# More or fewer messages: MESSAGES=5000 bash scripts/bench-delivery.sh
set -euo pipefail
cd "$(dirname "$0")/.."
url=${1:-}

if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install --quiet -e '.[test]'
bash scripts/translations.sh compile >/dev/null

.venv/bin/python scripts/bench_delivery.py --messages "${MESSAGES:-1000}" ${url:+--url "$url"}
