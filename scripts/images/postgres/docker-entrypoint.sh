#!/usr/bin/env bash
# The official postgres image's contract: POSTGRES_PASSWORD (required), POSTGRES_USER (default
# postgres, the superuser), POSTGRES_DB (default: the user), data in $PGDATA, password auth over
# TCP, and a first-start setup that listens on the Unix socket only.
set -Eeuo pipefail

if [ "${1:0:1}" = '-' ]; then
    set -- postgres "$@"
fi

if [ "$1" = 'postgres' ] && [ "$(id -u)" = '0' ]; then
    mkdir -p "$PGDATA"
    chown -R postgres:postgres "$PGDATA"
    chmod 700 "$PGDATA"
    exec gosu postgres "$0" "$@"
fi

if [ "$1" = 'postgres' ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "${POSTGRES_PASSWORD:-}" ]; then
        echo >&2 'error: database is uninitialized and POSTGRES_PASSWORD is not set'
        exit 1
    fi
    user=${POSTGRES_USER:-postgres}
    db=${POSTGRES_DB:-$user}
    initdb --username="$user" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
        --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 >/dev/null
    printf '\nhost all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
    # The setup's server has no TCP listener: a client that answers over TCP is the real one.
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    if [ "$db" != 'postgres' ]; then
        # psql quotes the name itself (a variable in a script read from stdin, not from -c).
        psql -v ON_ERROR_STOP=1 --username "$user" --dbname postgres --set db="$db" --no-psqlrc \
            >/dev/null <<<'CREATE DATABASE :"db";'
    fi
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    echo 'PostgreSQL init process complete; ready for start up.'
fi

exec "$@"
