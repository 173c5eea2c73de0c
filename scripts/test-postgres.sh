#!/usr/bin/env bash
# Start Debian's PostgreSQL on this machine and create the test role and database.
# Prints the DATABASE_URL to use, and nothing else, on standard output: callers
# capture it (`url=$(bash scripts/test-postgres.sh)`), so every other message goes
# to standard error. Idempotent: safe to run again.
set -euo pipefail

ROLE=portal_test
PASSWORD=portal_test
DATABASE=${1:-portal_test}

version=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)
if [ -z "$version" ]; then
  echo "PostgreSQL is not installed (apt-get install postgresql)" >&2
  exit 1
fi
if ! pg_lsclusters -h | awk '{print $4}' | grep -q online; then
  if ! pg_lsclusters -h | grep -q .; then
    pg_createcluster "$version" main >&2
  fi
  pg_ctlcluster "$version" main start >&2  # e.g. "Removed stale pid file."
fi
port=$(pg_lsclusters -h | awk 'NR==1 {print $3}')

psql_as_postgres() { su postgres -c "psql -p $port -qtAX $*"; }
if [ "$(psql_as_postgres "-c \"SELECT 1 FROM pg_roles WHERE rolname='$ROLE'\"")" != "1" ]; then
  psql_as_postgres "-c \"CREATE ROLE $ROLE LOGIN PASSWORD '$PASSWORD' CREATEDB\"" >/dev/null
fi
if [ "$(psql_as_postgres "-c \"SELECT 1 FROM pg_database WHERE datname='$DATABASE'\"")" != "1" ]; then
  psql_as_postgres "-c \"CREATE DATABASE $DATABASE OWNER $ROLE\"" >/dev/null
fi
echo "postgresql+psycopg://$ROLE:$PASSWORD@127.0.0.1:$port/$DATABASE"
