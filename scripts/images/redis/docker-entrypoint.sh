#!/bin/sh
# The official redis image's contract: `redis-server [config] [--option value]...` (options alone
# imply redis-server), run as the redis user in /data, listening on every interface of the
# container. The official image compiles protected mode off; Debian's binary has it on, so the
# stand-in turns it off first (the command's own options, after it, still win).
set -eu

if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
    set -- redis-server "$@"
fi

if [ "$1" = 'redis-server' ] && [ "$(id -u)" = '0' ]; then
    find . \! -user redis -exec chown redis '{}' +
    exec gosu redis "$0" "$@"
fi

if [ "$1" = 'redis-server' ]; then
    shift
    if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then  # a config file comes first
        config=$1
        shift
        set -- redis-server "$config" --protected-mode no "$@"
    else
        set -- redis-server --protected-mode no "$@"
    fi
fi

if [ "$(umask)" = '0022' ]; then
    umask 0077
fi

exec "$@"
