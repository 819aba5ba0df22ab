#!/usr/bin/env bash
# Throwaway PostgreSQL for tests on a private port: `scripts/postgres.sh start|stop|url`.
# `start` is idempotent and prints the SQLAlchemy URL of an empty-able database `flowtest` owned by role `flow`.
set -euo pipefail

PGPORT=${FLOW_TEST_PGPORT:-55432}
PGDIR=${FLOW_TEST_PGDIR:-/tmp/flow-jupyter-pg-$PGPORT}
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
URL="postgresql+psycopg2://flow:flowpw@127.0.0.1:$PGPORT/flowtest"

as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
running() { [[ -f $PGDIR/data/postmaster.pid ]] && as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" status >/dev/null 2>&1; }

start() {
  [[ -x $PGBIN/initdb ]] || { echo "postgres: not installed (scripts/install-system.sh)" >&2; exit 1; }
  if ! running; then
    if [[ ! -f $PGDIR/data/PG_VERSION ]]; then
      rm -rf "$PGDIR"; mkdir -p "$PGDIR"
      [[ $(id -u) == 0 ]] && chown postgres "$PGDIR"
      as_pg "$PGBIN/initdb" -D "$PGDIR/data" -U postgres --auth=trust -E UTF8 >/dev/null
    fi
    as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w start \
      -o "-p $PGPORT -k $PGDIR -c listen_addresses=127.0.0.1 -c fsync=off" >/dev/null
  fi
  psql_() { psql -X -q -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres -tA "$@"; }
  [[ $(psql_ -c "SELECT 1 FROM pg_roles WHERE rolname='flow'") == 1 ]] || psql_ -c "CREATE ROLE flow LOGIN PASSWORD 'flowpw' CREATEDB"
  [[ $(psql_ -c "SELECT 1 FROM pg_database WHERE datname='flowtest'") == 1 ]] || psql_ -c "CREATE DATABASE flowtest OWNER flow"
  echo "$URL"
}

stop() {
  if running; then as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -m fast -w stop >/dev/null; fi
  rm -rf "$PGDIR"
  echo "postgres: stopped" >&2
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  url) echo "$URL" ;;
  *) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac
