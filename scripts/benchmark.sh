#!/usr/bin/env bash
# The million-referral benchmark on SQLite and PostgreSQL (not part of the tests).
#   bash scripts/benchmark.sh                  # both databases, 1,000,000 referrals
#   bash scripts/benchmark.sh 100000 sqlite    # a smaller run, one database
# Generating a million referrals with their histories takes about 25 minutes per
# database on two cores; the figures are printed at the end of each run. To measure a
# generated database again: .venv/bin/python scripts/benchmark.py --reuse --url ...
set -euo pipefail
cd "$(dirname "$0")/.."
referrals=${1:-1000000}
databases=${2:-"sqlite postgresql"}

if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install --quiet -e '.[test]'
bash scripts/translations.sh compile >/dev/null

for database in $databases; do
  if [ "$database" = postgresql ]; then
    url=$(bash scripts/test-postgres.sh portal_bench)  # its own database: it is emptied
    .venv/bin/python scripts/benchmark.py --database postgresql --url "$url" --referrals "$referrals"
  else
    .venv/bin/python scripts/benchmark.py --database sqlite --referrals "$referrals"
  fi
done
