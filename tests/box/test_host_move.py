"""Moving a host in two boxes: `dployr backup` on box A, a fresh box B, `dployr restore` there,
and a secret env value still decrypts and reaches the app (docs/decisions.md "Moving a host")."""

from __future__ import annotations

import stat
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.box.test_install import PASSWORD, call, login, wait_ready
from tests.box.vps import Box, Files, free_port, run_install

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
REPO = "/srv/web"
ARCHIVE = "/root/dployr-move.tar.gz"
SECRET = "moved-with-its-key s3cr3t=1 'q' \"dq\""
APP = """\
import http.server, os


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        data = os.environ.get("GREETING", "").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""
DEPLOY = {
    "name": "web",
    "source": "local",
    "path": REPO,
    "runtime": "python",
    "target": "systemd",
    "env": {"GREETING": {"value": SECRET, "secret": True}},
}


def installed(box: Box, files: Files) -> str:
    """install.sh in the box (no Docker, no Caddy: the proxy is `none`), local sources allowed
    (set in the config, before the daemon's next start); the API's address."""
    port = free_port()
    run_install(
        box, files, "--no-docker", "--no-caddy", "--port", str(port), env=files.wheelhouse_env()
    )
    box.exec(
        "tee", "-a", "/etc/dployr/config.toml", input="[runtime]\nallow_local_sources = true\n"
    )
    # The app's source: a git repo in the box (on a real host, wherever the service pulls from).
    box.sh(f"mkdir -p {REPO} && cd {REPO} && git init -q -b main")
    box.exec("tee", f"{REPO}/app.py", input=APP)
    box.sh(
        f"cd {REPO} && git add -A && git -c user.email=t@example.com -c user.name=t commit -qm app"
    )
    return f"http://127.0.0.1:{port}"


def deploy(box: Box, api: str, token: str) -> dict[str, Any]:
    """POST the deployment and wait for it to be live."""
    status, created = call(f"{api}/api/v1/deployments", DEPLOY, token)
    assert status == 202, created
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        status, found = call(f"{api}/api/v1/deployments/{created['id']}", None, token)
        assert status == 200, found
        if found["status"] in ("failed", "cancelled"):
            _, log = call(f"{api}/api/v1/deployments/{created['id']}/logs", None, token)
            pytest.fail(
                f"deployment {found['status']}: {found['error']}\n{log}\n{box.journal('dployr')}"
            )
        if found["status"] == "live":
            return dict(found)
        time.sleep(0.3)
    raise AssertionError(f"deployment {created['id']} not live in 180 s")


def app_says(api: str, token: str, service_id: str) -> str:
    """What the live instance answers on its loopback port (backend `none`: no route, the port)."""
    status, found = call(f"{api}/api/v1/services/{service_id}/status", None, token)
    assert status == 200, found
    assert found["host_port"], found
    with urllib.request.urlopen(f"http://127.0.0.1:{found['host_port']}/", timeout=10) as answer:
        return str(answer.read().decode())


def test_a_restored_host_decrypts_its_secrets_and_serves_them(
    new_box: Callable[..., Box], install_files: Files, tmp_path: Path
) -> None:
    # Box A: the old host, with a user and a service with a secret env value it serves.
    old = new_box()
    api = installed(old, install_files)
    old.exec("systemctl", "restart", "dployr")
    wait_ready(api)
    registered = {"name": "Ada", "email": "ada@example.com", "password": PASSWORD}
    status, body = call(f"{api}/api/v1/auth/register", registered)
    assert status == 201, body
    token = login(api)
    service_id = deploy(old, api, token)["service_id"]
    assert app_says(api, token, service_id) == SECRET

    # The backup, as root with the installed CLI and the config install.sh wrote, beside the
    # running daemon; then the archive leaves the host and the host is gone.
    said = old.exec("dployr", "backup", ARCHIVE).stdout
    assert ARCHIVE in said and "secrets/secrets.key" in said, said
    assert old.exec("stat", "-c", "%a %U", ARCHIVE).stdout.split() == ["600", "root"]
    archive = tmp_path / "dployr-move.tar.gz"
    old.copy_out(ARCHIVE, archive)
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    old.remove()  # its app too: what answers from now on is box B's

    # Box B: a fresh host; the documented steps: install, stop, restore, start.
    new = new_box()
    api = installed(new, install_files)
    new.exec("systemctl", "stop", "dployr")
    new.copy_in(archive, ARCHIVE)
    said = new.exec("dployr", "restore", ARCHIVE).stdout
    assert "restored /var/lib/dployr" in said, said
    assert "release dir is not on this host comes back with its next deployment" in said, said
    assert new.exec("stat", "-c", "%a", "/var/lib/dployr/secrets/secrets.key").stdout.strip() == (
        "600"
    )
    new.exec("systemctl", "start", "dployr")
    wait_ready(api)

    # The old user logs in (box B's install wrote its own jwt_secret: old tokens end there,
    # passwords do not), and the secret reads back masked: it decrypted with the moved key.
    token = login(api)
    status, env = call(f"{api}/api/v1/services/{service_id}/env", None, token)
    assert status == 200, env
    (greeting,) = env["env"]
    assert greeting["key"] == "GREETING" and greeting["secret"] is True
    assert greeting["value"] != SECRET and SECRET not in str(env)

    # The release dirs stayed on box A: reconcile said so, and the service comes back with its
    # next deployment, the same POST; the app answers with the value decrypted on box B.
    assert "could not bring web back" in new.journal("dployr")
    redeployed = deploy(new, api, token)
    assert redeployed["service_id"] == service_id
    assert app_says(api, token, service_id) == SECRET
