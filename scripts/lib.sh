# Shared by scripts/*: logging and the project's virtualenv.

log() { printf '==> %s\n' "$*" >&2; }

# apt_install PKG...: install Debian packages that are missing (needs root on a fresh machine).
apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ensure_venv: ./.venv with a pip that works (python3-venv on a bare Debian).
ensure_venv() {
    if [ ! -x .venv/bin/python ]; then
        if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
            apt_install python3-venv
        fi
        log "creating .venv"
        python3 -m venv .venv
        .venv/bin/pip install --quiet --disable-pip-version-check --upgrade pip
    fi
}
