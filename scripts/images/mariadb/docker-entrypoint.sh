#!/usr/bin/env bash
# The official mariadb image's contract: MARIADB_ROOT_PASSWORD (required), MARIADB_DATABASE,
# MARIADB_USER and MARIADB_PASSWORD (that user gets every right on that database), data in
# /var/lib/mysql, root reachable with its password from any host, and a first-start setup
# that has no TCP listener (--skip-networking).
set -Eeuo pipefail

if [ "${1:0:1}" = '-' ]; then
    set -- mariadbd "$@"
fi

datadir=/var/lib/mysql
socket=/run/mysqld/mysqld.sock

if [ "$1" = 'mariadbd' ] && [ "$(id -u)" = '0' ]; then
    chown -R mysql:mysql "$datadir" /run/mysqld
    exec gosu mysql "$0" "$@"
fi

# A string literal's body for SQL: backslashes, newlines and quotes escaped.
sql_literal() {
    local escaped=${1//\\/\\\\}
    escaped=${escaped//$'\n'/\\n}
    printf '%s' "${escaped//\'/\\\'}"
}

init_sql() {
    local root_pw db user pw
    root_pw=$(sql_literal "$1")
    printf '%s\n' "SET @@SESSION.SQL_LOG_BIN=0;" \
        "DROP USER IF EXISTS root@'127.0.0.1', root@'::1';" \
        "EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS root@\\'', @@hostname, '\\'');" \
        "SET PASSWORD FOR 'root'@'localhost' = PASSWORD('$root_pw');" \
        "CREATE USER 'root'@'%' IDENTIFIED BY '$root_pw';" \
        "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
    if [ -n "${MARIADB_DATABASE:-}" ]; then
        db=${MARIADB_DATABASE//\`/\`\`}
        printf '%s\n' "CREATE DATABASE IF NOT EXISTS \`$db\`;"
    fi
    if [ -n "${MARIADB_USER:-}" ] && [ -n "${MARIADB_PASSWORD:-}" ]; then
        user=$(sql_literal "$MARIADB_USER")
        pw=$(sql_literal "$MARIADB_PASSWORD")
        printf '%s\n' "CREATE USER '$user'@'%' IDENTIFIED BY '$pw';"
        if [ -n "${MARIADB_DATABASE:-}" ]; then
            printf '%s\n' "GRANT ALL ON \`$db\`.* TO '$user'@'%';"
        fi
    fi
}

if [ "$1" = 'mariadbd' ] && [ ! -d "$datadir/mysql" ]; then
    root_password=${MARIADB_ROOT_PASSWORD:-${MYSQL_ROOT_PASSWORD:-}}
    if [ -z "$root_password" ]; then
        echo >&2 'error: database is uninitialized and MARIADB_ROOT_PASSWORD is not set'
        exit 1
    fi
    mariadb-install-db --datadir="$datadir" --rpm --auth-root-authentication-method=normal \
        --skip-test-db --skip-log-bin >/dev/null
    "$@" --skip-networking --socket="$socket" --skip-log-bin &
    pid=$!
    for _ in $(seq 60); do
        if mariadb --protocol=socket --socket="$socket" -uroot -e 'SELECT 1' >/dev/null 2>&1; then
            break
        fi
        kill -0 "$pid" 2>/dev/null || { echo >&2 'error: the setup server exited'; exit 1; }
        sleep 1
    done
    init_sql "$root_password" \
        | mariadb --protocol=socket --socket="$socket" -uroot --binary-mode
    kill "$pid"
    wait "$pid"
    echo 'MariaDB init process done. Ready for start up.'
fi

exec "$@"
