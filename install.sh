#!/bin/sh
# dployr's installer for a Debian or Ubuntu host with systemd, run as root:
#
#     curl -fsSL <url>/install.sh | sh
#     curl -fsSL <url>/install.sh | sh -s -- --no-caddy --port 8000
#
# It installs what is missing (python3-venv, git, curl, Docker, Caddy), the daemon in a venv in
# /opt/dployr, a config with generated secrets in /etc/dployr/config.toml (0600), its data dir
# /var/lib/dployr, and the systemd unit; starts it and waits until /health/ready answers.
# Run it again to upgrade in place (data and config are kept). `--help` lists the flags.
#
# Everything is inside functions and runs from the last line, so a download cut short runs
# nothing.

PREFIX=/opt/dployr
CONFIG_DIR=/etc/dployr
CONFIG=/etc/dployr/config.toml
DATA_DIR=/var/lib/dployr
UNIT_DIR=/etc/systemd/system
UNIT=$UNIT_DIR/dployr.service
DOCKER_DAEMON_JSON=/etc/docker/daemon.json
OS_RELEASE=/etc/os-release
SYSTEMD_RUNTIME=/run/systemd/system
LINK=/usr/local/bin/dployr
# Where a release publishes its wheel (set when the project publishes one). It is not the PyPI
# name `dployr`: that name belongs to an unrelated project. Empty: --source is required.
DEFAULT_SOURCE=
READY_TIMEOUT=90

usage() {
    cat <<'USAGE'
Usage: install.sh [options]      (as root, on Debian or Ubuntu with systemd)

  --source SRC    what to pip install: a wheel (path or URL), an sdist, or a git URL
                  (git+https://...); required until a release sets a default
  --port PORT     the API's port on 127.0.0.1 (default 7870; used when the config is written)
  --no-docker     do not install Docker (apps then need another target)
  --no-caddy      do not install Caddy
  --swarm         this host will be a Docker Swarm manager: do not turn on live-restore
                  (Docker refuses it in swarm mode)
  --uninstall     remove the service and /opt/dployr; keep /etc/dployr and /var/lib/dployr
  --purge         remove everything: also the config, the data, and the apps (their units,
                  users, containers and images)
  -h, --help      this text

A second run upgrades dployr in place and keeps its config and data.
USAGE
}

say() { printf '==> %s\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
    printf 'install.sh: %s\n' "$*" >&2
    exit 1
}

parse_args() {
    SOURCE=$DEFAULT_SOURCE
    PORT=7870
    WITH_DOCKER=1
    WITH_CADDY=1
    SWARM=0
    ACTION=install
    while [ $# -gt 0 ]; do
        case $1 in
            --source)
                [ $# -ge 2 ] || die "--source needs a value"
                SOURCE=$2
                shift
                ;;
            --source=*) SOURCE=${1#--source=} ;;
            --port)
                [ $# -ge 2 ] || die "--port needs a value"
                PORT=$2
                shift
                ;;
            --port=*) PORT=${1#--port=} ;;
            --no-docker) WITH_DOCKER=0 ;;
            --no-caddy) WITH_CADDY=0 ;;
            --swarm) SWARM=1 ;;
            --uninstall) ACTION=uninstall ;;
            --purge) ACTION=purge ;;
            -h | --help) ACTION=help ;;
            *) die "unknown option: $1 (see --help)" ;;
        esac
        shift
    done
    case $PORT in
        '' | *[!0-9]*) die "--port must be a number from 1 to 65535, got '$PORT'" ;;
    esac
    if [ "$PORT" -lt 1 ] || [ "$PORT" -gt 65535 ]; then
        die "--port must be from 1 to 65535, got $PORT"
    fi
    if [ "$ACTION" = install ] && [ -z "$SOURCE" ]; then
        die "--source is required: a dployr wheel, sdist or git URL (see --help)"
    fi
}

check_host() {
    [ "$(id -u)" = 0 ] || die "run me as root (sudo sh install.sh ...)"
    [ -r "$OS_RELEASE" ] || die "$OS_RELEASE is missing: Debian or Ubuntu is required"
    os_id=$(sed -n 's/^ID=//p' "$OS_RELEASE" | tr -d '"')
    os_like=$(sed -n 's/^ID_LIKE=//p' "$OS_RELEASE" | tr -d '"')
    case " $os_id $os_like " in
        *" debian "* | *" ubuntu "*) ;;
        *) die "this is '$os_id': install.sh supports Debian and Ubuntu (and their derivatives)" ;;
    esac
    # sd_booted(3): systemd is PID 1 exactly when this directory exists.
    [ -d "$SYSTEMD_RUNTIME" ] || die "systemd is not running here: dployr runs as a systemd service"
}

# Installs the Debian packages given that are not installed yet (one apt-get update, if any).
apt_install() {
    missing=""
    for pkg in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
            missing="$missing $pkg"
        fi
    done
    [ -n "$missing" ] || return 0
    say "installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    # shellcheck disable=SC2086 # one word per package
    apt-get install -y -qq --no-install-recommends $missing >/dev/null \
        || die "apt-get install$missing failed"
}

install_packages() {
    apt_install python3 python3-venv git curl ca-certificates
    if [ "$WITH_DOCKER" = 1 ]; then
        # The distribution's engine (docker.io), unless an engine is installed already.
        have dockerd || apt_install docker.io
        # The swarm target's task health checks run a static busybox inside each image.
        [ "$SWARM" = 1 ] && apt_install busybox-static
        setup_live_restore
    fi
    if [ "$WITH_CADDY" = 1 ]; then
        have caddy || apt_install caddy
    fi
}

# live-restore keeps containers running while the engine restarts (an upgrade of docker.io),
# merged into /etc/docker/daemon.json. Docker refuses it in swarm mode: --swarm leaves it off.
setup_live_restore() {
    if [ "$SWARM" = 1 ]; then
        say "--swarm: live-restore stays off (containers stop while the engine restarts)"
        return 0
    fi
    state=$(docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null || true)
    if [ "$state" = active ]; then
        warn "this engine is in a swarm: live-restore stays off (Docker refuses it in swarm mode)"
        return 0
    fi
    mkdir -p "$(dirname "$DOCKER_DAEMON_JSON")"
    changed=$(python3 - "$DOCKER_DAEMON_JSON" <<'PY'
import json, os, sys
path = sys.argv[1]
try:
    with open(path) as f:
        settings = json.load(f)
except FileNotFoundError:
    settings = {}
except ValueError as err:
    sys.exit(f"{path} is not valid JSON ({err}): fix it, or run install.sh with --swarm")
if not isinstance(settings, dict):
    sys.exit(f"{path} is not a JSON object")
if settings.get("live-restore") is True:
    print("no")
    sys.exit()
settings["live-restore"] = True
with open(path + ".dployr-new", "w") as f:
    json.dump(settings, f, indent=2)
    f.write("\n")
os.replace(path + ".dployr-new", path)
print("yes")
PY
    ) || die "cannot turn on live-restore in $DOCKER_DAEMON_JSON"
    if [ "$changed" = yes ]; then
        say "live-restore turned on in $DOCKER_DAEMON_JSON"
        # The engine reads live-restore again on SIGHUP: no container stops.
        if systemctl is-active --quiet docker; then
            systemctl reload docker || warn "docker did not reload; restart it to apply live-restore"
        fi
    fi
    systemctl enable --now docker >/dev/null 2>&1 || warn "the Docker service did not start"
}

install_package() {
    # A venv whose interpreter is gone (the distribution moved to a new python3) is made again.
    if ! "$PREFIX/bin/python" -c 'import sys' >/dev/null 2>&1; then
        say "creating the virtualenv $PREFIX"
        python3 -m venv --clear "$PREFIX" || die "python3 -m venv $PREFIX failed"
    fi
    say "installing dployr from $SOURCE"
    pip="$PREFIX/bin/pip"
    # The package itself first, again even when its version did not change (an upgrade in place
    # from a rebuilt wheel or a git branch), then whatever of its dependencies is missing.
    "$pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps "$SOURCE" \
        || die "pip install of $SOURCE failed"
    "$pip" install --quiet --disable-pip-version-check "$SOURCE" \
        || die "pip install of the dependencies of $SOURCE failed"
    # Another project's package of the same name would not have these.
    "$PREFIX/bin/python" -c 'import dployr.cli, dployr.config' 2>/dev/null \
        || die "$SOURCE is not dployr the deploy agent (dployr.cli is missing)"
    "$PREFIX/bin/dployr" --version >/dev/null || die "$PREFIX/bin/dployr does not run"
    if [ ! -e "$LINK" ] || [ "$(readlink "$LINK")" = "$PREFIX/bin/dployr" ]; then
        ln -sf "$PREFIX/bin/dployr" "$LINK"
    fi
}

# The proxy the daemon drives: the one installed here now, written down so that it never
# drives one it was not meant to.
proxy_backend() {
    if have caddy; then
        echo caddy
    elif have nginx; then
        echo nginx
    else
        echo none
    fi
}

write_config() {
    mkdir -p "$CONFIG_DIR" "$DATA_DIR"
    chmod 0700 "$CONFIG_DIR"
    # o+x only: the systemd target's apps, each its own user, reach their release dirs inside
    # (names can be reached, not listed; everything else in it is root's 0600/0700).
    chmod 0711 "$DATA_DIR"
    if [ -e "$CONFIG" ]; then
        say "keeping $CONFIG"
        [ "$PORT" = 7870 ] || warn "--port $PORT is not applied: $CONFIG is kept as it is"
        chmod 0600 "$CONFIG"
        return 0
    fi
    secret=$("$PREFIX/bin/python" -c 'import secrets; print(secrets.token_urlsafe(48))') \
        || die "cannot generate a secret"
    backend=$(proxy_backend)
    say "writing $CONFIG (proxy: $backend)"
    (
        umask 077
        cat >"$CONFIG.new" <<EOF
# dployr's configuration: every key is optional (the keys and their defaults: README.md).
# Written by install.sh; later runs keep it. After a change: systemctl restart dployr
[server]
host = "127.0.0.1"
port = $PORT
data_dir = "$DATA_DIR"

[auth]
# Signs access tokens; changing it logs everyone out.
jwt_secret = "$secret"

[proxy]
backend = "$backend"
EOF
    ) || die "cannot write $CONFIG"
    chmod 0600 "$CONFIG.new"
    mv "$CONFIG.new" "$CONFIG"
}

install_unit() {
    unit=$("$PREFIX/bin/python" -c \
        'import dployr, pathlib; print(pathlib.Path(dployr.__file__).parent / "systemd" / "dployr.service")') \
        || die "cannot locate the package's unit file"
    [ -f "$unit" ] || die "the installed package has no unit file ($unit)"
    install -m 0644 "$unit" "$UNIT"
    systemctl daemon-reload
    systemctl enable dployr >/dev/null 2>&1 || die "systemctl enable dployr failed"
    # A restart, also on an upgrade: apps are not the daemon's children and keep running.
    systemctl restart dployr || die "dployr did not start: journalctl -u dployr"
}

# Prints the address the API answers on (from the config the daemon reads).
api_url() {
    "$PREFIX/bin/python" - "$CONFIG" <<'PY'
import sys
from dployr.config import load_config
server = load_config(sys.argv[1]).server
host = server.host if server.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
host = f"[{host}]" if ":" in host else host
print(f"http://{host}:{server.port}")
PY
}

wait_ready() {
    url=$(api_url) || die "$CONFIG is not valid (see above)"
    say "waiting for $url/health/ready"
    waited=0
    while [ "$waited" -lt "$READY_TIMEOUT" ]; do
        if curl -fsS -o /dev/null --max-time 5 "$url/health/ready" 2>/dev/null; then
            return 0
        fi
        # Gone for good (a crash loop shows `activating` while it is restarted; that waits).
        case $(systemctl show -p ActiveState --value dployr) in
            failed | inactive)
                journalctl -u dployr -n 30 --no-pager >&2 || true
                die "dployr is not running (journalctl -u dployr)"
                ;;
        esac
        sleep 1
        waited=$((waited + 1))
    done
    why=$(curl -sS --max-time 5 "$url/health/ready" 2>&1 || true)
    journalctl -u dployr -n 30 --no-pager >&2 || true
    die "dployr runs but is not ready after ${READY_TIMEOUT} s: $why"
}

print_next_steps() {
    url=$(api_url)
    port=${url##*:}
    cat <<EOF

dployr $("$PREFIX/bin/dployr" --version | sed 's/^dployr //') is running: $url (systemctl status dployr)

Create the admin on this host:
    dployr admin create-user --email you@example.com --name "Your Name"

Then, from your laptop (the API listens on this host's loopback only), open a tunnel and log in:
    ssh -N -L $port:127.0.0.1:$port root@THIS_HOST &
    curl -s http://127.0.0.1:$port/api/v1/auth/login -H 'Content-Type: application/json' \\
         -d '{"email": "you@example.com", "password": "..."}'
To serve the API on a domain through the proxy instead, set proxy.api_domain in $CONFIG.
Config: $CONFIG   Data: $DATA_DIR   Logs: journalctl -u dployr
EOF
}

# --purge: the apps go too, as they run from the data dir that goes. systemd target: its units
# (dployr-<service>-<n>-<suffix>.service) and the services' users (home under releases/);
# docker target: the containers and images labelled with this data dir's agent id.
purge_apps() {
    removed=0
    for unit_file in "$UNIT_DIR"/dployr-*.service; do
        app=${unit_file##*/}
        case $app in
            dployr-*-[0-9]*-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f].service) ;;
            *) continue ;;
        esac
        [ -f "$unit_file" ] || continue
        say "removing the app unit $app"
        systemctl disable --now "$app" >/dev/null 2>&1 || true
        rm -f "$unit_file"
        removed=1
    done
    if [ "$removed" = 1 ]; then
        systemctl daemon-reload
        systemctl reset-failed >/dev/null 2>&1 || true
    fi
    awk -F: -v home="$DATA_DIR/releases/" \
        'index($1, "dployr-") == 1 && index($6, home) == 1 { print $1 }' /etc/passwd \
        | while read -r app_user; do
            say "removing the user $app_user"
            userdel "$app_user" >/dev/null 2>&1 || warn "userdel $app_user failed"
        done
    if [ -r "$DATA_DIR/agent_id" ] && have docker; then
        agent=$(cat "$DATA_DIR/agent_id")
        containers=$(docker ps -aq --filter "label=dployr.agent=$agent" 2>/dev/null || true)
        if [ -n "$containers" ]; then
            say "removing the app containers"
            # shellcheck disable=SC2086 # one word per id
            docker rm -f $containers >/dev/null || warn "some containers were not removed"
        fi
        images=$(docker images -q --filter "label=dployr.agent=$agent" 2>/dev/null | sort -u)
        if [ -n "$images" ]; then
            say "removing the app images"
            # shellcheck disable=SC2086 # one word per id
            docker rmi -f $images >/dev/null || warn "some images were not removed"
        fi
    fi
}

uninstall() {
    check_host
    if [ -e "$UNIT" ]; then
        say "removing the dployr service"
        systemctl disable --now dployr >/dev/null 2>&1 || true
        rm -f "$UNIT"
        systemctl daemon-reload
    fi
    if [ "$(readlink "$LINK" 2>/dev/null)" = "$PREFIX/bin/dployr" ]; then
        rm -f "$LINK"
    fi
    rm -rf "$PREFIX"
    if [ "$ACTION" = purge ]; then
        purge_apps
        say "removing $CONFIG_DIR and $DATA_DIR"
        rm -rf "$CONFIG_DIR" "$DATA_DIR"
        say "dployr and its apps are removed (the proxy keeps its last config)"
    else
        say "dployr is removed; kept $CONFIG_DIR and $DATA_DIR (--purge removes them)"
    fi
}

main() {
    parse_args "$@"
    case $ACTION in
        help)
            usage
            return 0
            ;;
        uninstall | purge)
            uninstall
            return 0
            ;;
    esac
    check_host
    install_packages
    install_package
    write_config
    install_unit
    wait_ready
    print_next_steps
}

main "$@"
