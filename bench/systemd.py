"""The systemd target's POST → live against the same steps done by hand, in a VPS in a box.

One box: dployr installed from the checkout's wheel (install.sh, no Docker, proxy none), a
Python http.server app in a git repo in the box. Each round commits a change, then
- dployr: POST /api/v1/deployments (`target: "systemd"`) from the host, polled every 20 ms
  until the deployment is `live` (fetch into its cache, unpack, a venv built by systemd-run as
  the service's user, the unit and env file written, verified, daemon-reload, start, the
  health check);
- by hand, one shell script in the box timed from inside: `git archive` into a fresh release
  dir, chown, `systemd-run --uid … python3 -m venv`, an env file and a unit with the same
  settings, `systemd-analyze verify`, daemon-reload, `systemctl start`, curl until it answers,
  then the previous unit stopped (after the clock stops, as dployr retires after `live`).
Prints each round and the medians; the goal is dployr ≤ 1.3x by hand.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.box.test_install import call  # noqa: E402 (the checkout's tests, after sys.path)
from tests.box.test_systemd_target import APP  # noqa: E402
from tests.box.vps import (  # noqa: E402
    Box,
    Files,
    build_wheel,
    free_port,
    image_exists,
    remove_boxes,
    run_install,
    serve_directory,
)

REPO = "/srv/web"
PASSWORD = "correct horse battery"
BY_HAND = r"""
set -eu
n=$1; port=$2; previous=${3:-}
start=$(date +%s.%N)
rel=/var/lib/hand/$n
mkdir -p "$rel/app"
git -C /srv/web archive HEAD | tar -x -C "$rel/app"
chown -R hand:hand "$rel"
systemd-run --wait --pipe --collect --quiet --uid=hand --gid=hand --working-directory="$rel/app" \
    -p NoNewPrivileges=yes -p ProtectSystem=strict -p ProtectHome=yes -p PrivateTmp=yes \
    -p ReadWritePaths="$rel" -- /usr/bin/python3 -m venv --without-pip "$rel/venv"
umask 077
printf 'PATH="%s/venv/bin:/usr/bin:/bin"\nHOME="%s"\nPORT="%s"\n' "$rel" "$rel" "$port" \
    > /var/lib/hand/units/hand-$n.env
umask 022
cat > /var/lib/hand/units/hand-$n.service <<EOF
[Service]
Type=exec
User=hand
Group=hand
WorkingDirectory=$rel/app
EnvironmentFile=/var/lib/hand/units/hand-$n.env
ExecStart=/bin/sh -c "python3 app.py"
Restart=on-failure
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
ReadWritePaths=$rel
[Install]
WantedBy=multi-user.target
EOF
systemd-analyze verify /var/lib/hand/units/hand-$n.service
cp /var/lib/hand/units/hand-$n.service /etc/systemd/system/
ln -sf /etc/systemd/system/hand-$n.service /etc/systemd/system/multi-user.target.wants/
systemctl daemon-reload
systemctl start hand-$n.service
until curl -fsS -o /dev/null "http://127.0.0.1:$port/"; do sleep 0.05; done
end=$(date +%s.%N)
if [ -n "$previous" ]; then systemctl stop "hand-$previous.service"; fi
echo "$start $end"
"""


def wait_ready(api: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if call(f"{api}/health/ready")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{api} is not ready")


def commit(box: Box, version: str) -> None:
    box.sh(
        f"cd {REPO} && echo {version} > VERSION && git add -A && "
        f"git -c user.email=b@example.com -c user.name=b commit -qm {version}"
    )


def deploy(api: str, token: str) -> float:
    """POST → live, seconds (polled every 20 ms)."""
    body = {"name": "web", "source": "local", "path": REPO, "runtime": "python",
            "target": "systemd"}  # fmt: skip
    started = time.monotonic()
    status, created = call(f"{api}/api/v1/deployments", body, token)
    if status != 202:
        raise SystemExit(f"POST answered {status}: {created}")
    while True:
        status, found = call(f"{api}/api/v1/deployments/{created['id']}", None, token)
        if found["status"] == "live":
            return time.monotonic() - started
        if found["status"] in ("failed", "cancelled"):
            raise SystemExit(f"deployment {found['status']}: {found['error']}")
        time.sleep(0.02)


def setup(box: Box, files: Files) -> tuple[str, str]:
    port = free_port()
    run_install(box, files, "--no-docker", "--no-caddy", "--port", str(port))
    box.exec(
        "tee", "-a", "/etc/dployr/config.toml",
        input="[runtime]\nallow_local_sources = true\ndrain_seconds = 0.5\n",
    )  # fmt: skip
    box.exec("systemctl", "restart", "dployr")
    api = f"http://127.0.0.1:{port}"
    wait_ready(api)
    box.sh(f"mkdir -p {REPO} && cd {REPO} && git init -q -b main")
    box.exec("tee", f"{REPO}/app.py", input=APP)
    box.sh("useradd --system --user-group --no-create-home --shell /usr/sbin/nologin hand")
    box.sh("mkdir -p /var/lib/hand/units && chmod 0711 /var/lib/hand")
    box.exec("tee", "/root/by-hand.sh", input=BY_HAND)
    register = {"name": "Ada", "email": "ada@example.com", "password": PASSWORD}
    status, body = call(f"{api}/api/v1/auth/register", register)
    if status != 201:
        raise SystemExit(f"register answered {status}: {body}")
    login = {"email": "ada@example.com", "password": PASSWORD}
    status, body = call(f"{api}/api/v1/auth/login", login)
    return api, str(body["access_token"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not image_exists():
        raise SystemExit("the box image is missing: run scripts/provision as root")
    session = f"bench{int(time.time())}"
    ours, hand = [], []
    with tempfile.TemporaryDirectory() as tmp:
        served = Path(tmp) / "served"
        served.mkdir()
        wheel = build_wheel(ROOT, served)
        (served / "install.sh").write_bytes((ROOT / "install.sh").read_bytes())
        try:
            with serve_directory(served) as url:
                box = Box(session=session).start()
                api, token = setup(box, Files(url, served, wheel.name))
                commit(box, "v0")
                deploy(api, token)  # the first: makes the user, the cache, the service
                previous = ""
                for n in range(1, args.rounds + 1):
                    commit(box, f"v{n}")
                    ours.append(deploy(api, token))
                    time.sleep(1.0)  # the old instance drains and stops: not in the figure
                    said = box.exec("sh", "/root/by-hand.sh", str(n), str(free_port()), previous)
                    begin, end = (float(x) for x in said.stdout.split())
                    hand.append(end - begin)
                    previous = str(n)
                    print(
                        f"round {n}: dployr POST → live {ours[-1]:.2f} s; by hand {hand[-1]:.2f} s",
                        flush=True,
                    )
        finally:
            remove_boxes(session)
    a, b = statistics.median(ours), statistics.median(hand)
    print(f"median: dployr {a:.2f} s, by hand {b:.2f} s: {a / b:.2f}x (goal ≤ 1.3x)")


if __name__ == "__main__":
    main()
