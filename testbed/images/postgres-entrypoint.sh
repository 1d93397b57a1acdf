#!/bin/sh
# Entry point of the test bed's PostgreSQL image (testbed/harness/images.ts): the
# part of the official image's docker-entrypoint.sh that config/backends/postgresql.yaml
# relies on. On an empty PGDATA it creates a cluster whose superuser `postgres`
# logs in with POSTGRES_PASSWORD (scram-sha-256, from any address) and the
# database POSTGRES_DB. Then PostgreSQL replaces this shell as PID 1, so the
# container's stop signal reaches it.
set -eu

if [ "${1:-postgres}" != postgres ]; then
  exec "$@"
fi
if [ "$#" -gt 0 ]; then shift; fi

PGDATA=${PGDATA:-/var/lib/postgresql/data}
export PGDATA

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo 'postgres-entrypoint: POSTGRES_PASSWORD is not set; this image allows password logins only' >&2
    exit 1
  fi
  database=${POSTGRES_DB:-postgres}
  case $database in
    *'"'*)
      echo 'postgres-entrypoint: POSTGRES_DB must not contain a double quote' >&2
      exit 1
      ;;
  esac
  # initdb creates PGDATA (and its parents) or takes an empty one, with mode 0700.
  # The image has no locales: the C locale, with UTF-8 as the encoding.
  printf '%s\n' "$POSTGRES_PASSWORD" |
    initdb --username=postgres --pwfile=/dev/stdin --auth=scram-sha-256 --encoding=UTF8 --no-locale --pgdata="$PGDATA"
  printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  printf "listen_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
  if [ "$database" != postgres ]; then
    # Single-user mode: nothing listens while the cluster is being set up.
    printf 'CREATE DATABASE "%s"\n' "$database" |
      postgres --single -D "$PGDATA" -c exit_on_error=on postgres >/dev/null
  fi
fi

exec postgres -D "$PGDATA" "$@"
