#!/usr/bin/env bash
# Start a local PostgreSQL for the database tests and print its URL as the last line.
#
# Idempotent, run as root: installs Debian's postgresql if missing, starts (or creates) the
# installed cluster, waits until it accepts connections, then ensures the role `orch`
# (password `orch`, LOGIN CREATEDB) and the database `orch_test` exist. It listens on
# 127.0.0.1:5432 only. Progress goes to stderr; stdout carries only the URL.
set -euo pipefail

PORT=5432
ROLE=orch
PASSWORD=orch
DATABASE=orch_test

log() { echo "postgres.sh: $*" >&2; }

if ! command -v pg_lsclusters >/dev/null 2>&1; then
    log "installing postgresql"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
fi

cluster_line() { pg_lsclusters --no-header 2>/dev/null | awk -v p="$PORT" '$3 == p' | head -n1; }

if [ -z "$(cluster_line)" ]; then
    version=$(ls /usr/lib/postgresql | sort -V | tail -n1)
    log "creating cluster $version/main on port $PORT"
    pg_createcluster --port "$PORT" "$version" main >&2
fi

read -r version name _port status _rest <<<"$(cluster_line)"
if [ "$status" != "online" ]; then
    log "starting cluster $version/$name"
    pg_ctlcluster "$version" "$name" start >&2
fi

for _ in $(seq 1 60); do
    if pg_isready -q -h 127.0.0.1 -p "$PORT"; then
        break
    fi
    sleep 0.5
done
pg_isready -h 127.0.0.1 -p "$PORT" >&2 || { log "server did not accept connections"; exit 1; }

as_postgres() { runuser -u postgres -- psql -p "$PORT" -v ON_ERROR_STOP=1 -qAt "$@"; }

if [ "$(as_postgres -c "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" != "1" ]; then
    log "creating role $ROLE"
    as_postgres -c "CREATE ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD'" >&2
else
    as_postgres -c "ALTER ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD'" >&2
fi
if [ "$(as_postgres -c "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'")" != "1" ]; then
    log "creating database $DATABASE"
    as_postgres -c "CREATE DATABASE $DATABASE OWNER $ROLE" >&2
fi

echo "postgresql+psycopg://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DATABASE"
