"""The systemd target in a VPS in a box: the daemon from the built wheel (install.sh, no Docker),
a Python app from a git repo in the box deployed with `target: "systemd"`, served through a
private Caddy on the host (the box shares its loopback), logs from journald, a redeploy under
load, a rollback, and a reboot.

One box for the module; the tests run in order, each building on the one before."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import tarfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.box.test_install import PASSWORD, call, login, wait_ready
from tests.box.vps import Box, Files, free_port, run_install
from tests.proxy.conftest import Caddy, get, need
from tests.proxy.load import LoadResult, under_load

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
REPO = "/srv/web"
HOST = "web.localhost"
# Every character a unit or an env file could misread: it must reach the app as it is.
HOSTILE = "line one\nEVIL=1\n[Service]\nExecStartPre=/bin/false \"q\" 's' \\ $HOME %n `x` #;"

APP = """\
import http.server, os, sys

VERSION = open("VERSION").read().strip()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/env":
            body = os.environ.get("GREETING", "")
        elif self.path == "/note":  # a volume (SPEC §14), at the path the release gave it
            with open("/srv/notes/hits", "a+") as notes:
                notes.write(VERSION + "\\n")
                notes.seek(0)
                body = notes.read()
        else:
            body = VERSION
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        print(f"served {self.path} as {VERSION}", flush=True)

    def log_message(self, *args):
        pass


print(f"starting {VERSION} as uid {os.getuid()} on port {os.environ['PORT']}", flush=True)
print("a line on stderr", file=sys.stderr, flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


@dataclass
class Setup:
    box: Box
    api: str
    caddy: Caddy
    token: str = ""
    service_id: str = ""
    first: dict[str, Any] | None = None
    first_unit: str = ""

    def deploy(self, **extra: Any) -> dict[str, Any]:
        return self.wait(self.post(**extra)["id"])

    def post(self, **extra: Any) -> dict[str, Any]:
        body = {
            "name": "web",
            "source": "local",
            "path": REPO,
            "runtime": "python",
            "target": "systemd",
            "domain": HOST,
            "env": {"GREETING": {"value": HOSTILE, "secret": True}},
            **extra,
        }
        status, created = call(f"{self.api}/api/v1/deployments", body, self.token)
        assert status == 202, created
        return dict(created)

    def status_of(self, deployment_id: str) -> dict[str, Any]:
        status, found = call(f"{self.api}/api/v1/deployments/{deployment_id}", None, self.token)
        assert status == 200, found
        return dict(found)

    def build_units(self) -> list[str]:
        listed = self.box.exec(
            "systemctl", "list-units", "--all", "--plain", "--no-legend", "dployr-build-*"
        ).stdout
        return [line.split()[0] for line in listed.splitlines() if line.strip()]

    def building(self) -> dict[str, Any]:
        """A deployment whose build_cmd sleeps, once its unit runs (not the venv's before)."""
        created = self.post(build_cmd="sleep 300")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for unit in self.build_units():
                shown = self.box.exec("systemctl", "show", "-p", "ExecStart", "--", unit).stdout
                if "sleep 300" in shown:
                    return created
            time.sleep(0.2)
        raise AssertionError(f"no build unit ran: {self.status_of(created['id'])}")

    def wait(self, deployment_id: str, timeout: float = 180) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, found = call(f"{self.api}/api/v1/deployments/{deployment_id}", None, self.token)
            assert status == 200, found
            if found["status"] in ("live", "failed", "cancelled"):
                if found["status"] != "live":
                    _, log = call(
                        f"{self.api}/api/v1/deployments/{deployment_id}/logs", None, self.token
                    )
                    said = self.box.journal("dployr", 60)
                    pytest.fail(f"deployment {found['status']}: {found['error']}\n{log}\n{said}")
                return dict(found)
            time.sleep(0.3)
        raise AssertionError(f"deployment {deployment_id} not done in {timeout} s")

    def commit(self, version: str) -> None:
        self.box.sh(
            f"cd {REPO} && echo {version} > VERSION && git add -A && "
            f"git -c user.email=t@example.com -c user.name=t commit -qm {version}"
        )

    def through(self, path: str = "/") -> tuple[int, str]:
        return get(self.caddy.http_port, HOST, path)

    def unit_of_live(self) -> str:
        """The live instance's unit (the status's `container_id`: the instance's ref)."""
        url = f"{self.api}/api/v1/services/{self.service_id}/status"
        status, found = call(url, None, self.token)
        assert status == 200, found
        return str(found["container_id"])


@pytest.fixture(scope="module")
def setup(
    box_session: str, install_files: Files, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    need("caddy")
    caddy = Caddy.create(tmp_path_factory.mktemp("caddy") / "caddy")
    box = Box(session=box_session)
    try:
        caddy.start()
        box.start()  # no Docker socket: a VPS where systemd is what runs apps
        port = free_port()
        # The dependencies from the session's wheelhouse: installing them from PyPI is
        # test_install.py's to prove, not this module's.
        run_install(
            box, install_files, "--no-docker", "--no-caddy", "--port", str(port),
            env=install_files.wheelhouse_env(),
        )  # fmt: skip
        # Caddy runs on the host; the daemon in the box drives it over the shared loopback.
        proxy = caddy.proxy_config(caddyfile="/var/lib/dployr/Caddyfile")
        lines = ["[proxy]", *(f"{k} = {json.dumps(v)}" for k, v in proxy.items())]
        lines += ["[runtime]", "allow_local_sources = true", "drain_seconds = 1.0"]
        lines += ["[metrics]", "interval = 1"]
        box.sh("sed -i '/^\\[proxy\\]/,$d' /etc/dployr/config.toml")
        box.exec("tee", "-a", "/etc/dployr/config.toml", input="\n".join(lines) + "\n")
        box.exec("systemctl", "restart", "dployr")
        api = f"http://127.0.0.1:{port}"
        wait_ready(api)
        box.sh(f"mkdir -p {REPO} && cd {REPO} && git init -q -b main")
        box.exec("tee", f"{REPO}/app.py", input=APP)
        setup = Setup(box, api, caddy)
        setup.commit("v1")
        status, body = call(
            f"{api}/api/v1/auth/register",
            {"name": "Ada", "email": "ada@example.com", "password": PASSWORD},
        )
        assert status == 201, body
        setup.token = login(api)
        yield setup
    finally:
        box.remove()
        caddy.stop()


def test_a_release_runs_as_a_hardened_unit_of_its_own_user(setup: Setup) -> None:
    box = setup.box
    status, info = call(f"{setup.api}/api/v1/info", None, setup.token)
    assert status == 200, info
    # No Docker here: systemd is available, and what an omitted target picks.
    assert "systemd" in info["targets"] and "docker" not in info["targets"], info
    assert info["default_target"] == "systemd", info
    # A version the host has no interpreter for: a 400 that names what it has (Debian 12: 3.11).
    body = {"name": "old", "source": "local", "path": REPO, "runtime": "python",
            "version": "3.7", "target": "systemd"}  # fmt: skip
    status, refused = call(f"{setup.api}/api/v1/deployments", body, setup.token)
    assert status == 400 and refused["error"]["details"]["field"] == "version", refused
    assert "installed: 3.11" in refused["error"]["message"], refused
    live = setup.deploy(resources={"cpus": 0.5, "memory": "256m"})
    setup.first = live
    setup.service_id = live["service_id"]
    unit = setup.first_unit = setup.unit_of_live()
    assert setup.through() == (200, "v1")
    # The hostile value reached the app exactly: no variable, line or directive was added.
    assert setup.through("/env") == (200, HOSTILE)
    assert unit.startswith("dployr-web-1-") and unit.endswith(".service")
    props = box.exec(
        "systemctl", "show", "-p", "User,ActiveState,Restart,NoNewPrivileges,ProtectSystem,"
        "ProtectHome,PrivateTmp,UnitFileState,ControlGroup,CPUQuotaPerSecUSec,MemoryMax",
        "--", unit,
    ).stdout  # fmt: skip
    user = "dployr-" + setup.service_id.split("_", 1)[1]
    for line in (
        f"User={user}", "ActiveState=active", "Restart=on-failure", "NoNewPrivileges=yes",
        "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "UnitFileState=enabled",
        "CPUQuotaPerSecUSec=500ms", f"MemoryMax={256 * 1024 * 1024}",
    ):  # fmt: skip
        assert line in props.splitlines(), (line, props)
    # A cgroup of its own, not the daemon's (the box's cgroups sit under its container's).
    group = next(line for line in props.splitlines() if line.startswith("ControlGroup="))
    assert group.endswith(f"/system.slice/{unit}"), group
    env_file = f"/var/lib/dployr/units/{unit}.env"
    assert box.exec("stat", "-c", "%a %U", env_file).stdout.split() == ["600", "root"]
    # The secret is in no unit (anyone may read those) and on no command line.
    assert "EVIL" not in box.exec("cat", f"/etc/systemd/system/{unit}").stdout
    assert "EVIL" not in box.exec("systemctl", "show", "-p", "Environment", unit).stdout
    # The build ran as the service's user (it owns the venv it made), the app runs as it too.
    release = f"/var/lib/dployr/releases/{setup.service_id}/1"
    assert box.exec("stat", "-c", "%U", f"{release}/venv/bin/python").stdout.strip() == user
    pid = box.exec("systemctl", "show", "-p", "MainPID", "--value", unit).stdout.strip()
    assert box.exec("stat", "-c", "%U", f"/proc/{pid}").stdout.strip() == user
    # It cannot write outside its release dir.
    denied = box.exec(
        "systemd-run", "--wait", "--pipe", "--quiet", f"--uid={user}", "-p", "ProtectSystem=strict",
        "touch", "/var/lib/dployr/x", check=False,
    )  # fmt: skip
    assert denied.returncode != 0


def test_its_usage_is_sampled(setup: Setup) -> None:
    url = f"{setup.api}/api/v1/services/{setup.service_id}/metrics"
    deadline = time.monotonic() + 20
    current = None
    while time.monotonic() < deadline and current is None:
        status, metrics = call(url, None, setup.token)
        assert status == 200, metrics
        current = metrics["current"]
        time.sleep(0.5)
    assert current is not None
    # The app's process tree, as its main PID's (python's http.server: several MB resident).
    assert current["memory_bytes"] > 4 * 1024 * 1024, current
    assert current["restarts"] == 0


def test_logs_come_from_journald_through_the_api(setup: Setup) -> None:
    api, token = setup.api, setup.token
    assert setup.through("/probe-tail") == (200, "v1")
    url = f"{api}/api/v1/services/{setup.service_id}/logs?tail=50"
    deadline = time.monotonic() + 20
    messages: list[str] = []
    while time.monotonic() < deadline:
        status, logs = call(url, None, token)
        assert status == 200, logs
        messages = [line["message"] for line in logs["logs"]]
        if "served /probe-tail as v1" in messages:
            break
        time.sleep(0.3)
    assert "served /probe-tail as v1" in messages, messages
    assert any(m.startswith("starting v1 as uid ") for m in messages), messages
    assert "a line on stderr" in messages
    # Followed: a line printed after the request started arrives on the open stream.
    request = urllib.request.Request(
        f"{api}/api/v1/services/{setup.service_id}/logs?follow=true&tail=0",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/x-ndjson"},
    )
    with urllib.request.urlopen(request, timeout=20) as stream:
        time.sleep(0.5)
        assert setup.through("/probe-follow") == (200, "v1")
        seen = []
        for raw in stream:
            entry = json.loads(raw)
            seen.append(entry.get("message"))
            if entry.get("message") == "served /probe-follow as v1":
                break
        assert len(followers(setup.box)) == 1  # the stream's own journalctl -f
    assert "served /probe-follow as v1" in seen
    # The reader went away: its journalctl goes too.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and followers(setup.box):
        time.sleep(0.2)
    assert followers(setup.box) == []


def followers(box: Box) -> list[str]:
    """The `journalctl … -f` processes running in the box."""
    found = box.sh(
        "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done"
    ).stdout
    return [line for line in found.splitlines() if line.startswith("journalctl") and " -f " in line]


def test_a_redeploy_under_load_loses_no_request(setup: Setup) -> None:
    setup.commit("v2")
    result = run_load_during(setup, lambda: setup.deploy())
    assert result.sent > 20
    assert not result.failed, result.failed[:5]
    assert set(result.bodies()) <= {"v1", "v2"}
    assert setup.through() == (200, "v2")
    # The old release's unit is gone, files and all.
    old = setup.first_unit
    assert setup.box.exec("test", "-e", f"/etc/systemd/system/{old}", check=False).returncode
    units = setup.box.exec(
        "systemctl", "list-units", "--all", "--plain", "--no-legend", "dployr-web-*"
    ).stdout
    assert old not in units


def test_a_rollback_reuses_the_release_dir(setup: Setup) -> None:
    first = setup.first
    assert first is not None
    release = f"/var/lib/dployr/releases/{setup.service_id}/1"
    before = setup.box.exec("stat", "-c", "%Y %i", f"{release}.json").stdout
    status, created = call(
        f"{setup.api}/api/v1/deployments/{first['id']}/rollback", {}, setup.token
    )
    assert status == 202, created
    rolled = setup.wait(created["id"])
    building = next(s for s in rolled["stages"] if s["name"] == "building")
    assert building["status"] == "skipped"
    assert rolled["artifact"] == release
    assert setup.through() == (200, "v1")
    assert setup.box.exec("stat", "-c", "%Y %i", f"{release}.json").stdout == before
    unit = setup.unit_of_live()
    shown = setup.box.exec("systemctl", "show", "-p", "WorkingDirectory", "--", unit).stdout
    assert shown.strip() == f"WorkingDirectory={release}/app"


def test_a_restart_is_blue_green_with_a_second_unit_of_the_release(setup: Setup) -> None:
    before = setup.unit_of_live()
    status, body = call(f"{setup.api}/api/v1/services/{setup.service_id}/restart", {}, setup.token)
    assert status == 200, body
    after = setup.unit_of_live()
    assert after != before
    assert after.rsplit("-", 1)[0] == before.rsplit("-", 1)[0]  # the same release, a new suffix
    assert setup.through() == (200, "v1")
    assert setup.box.exec("test", "-e", f"/etc/systemd/system/{before}", check=False).returncode


def test_a_daemon_restart_leaves_the_app_running(setup: Setup) -> None:
    unit = setup.unit_of_live()
    pid = setup.box.exec("systemctl", "show", "-p", "MainPID", "--value", unit).stdout
    setup.box.exec("systemctl", "restart", "dployr")
    wait_ready(setup.api)
    assert setup.box.exec("systemctl", "show", "-p", "MainPID", "--value", unit).stdout == pid
    assert setup.through() == (200, "v1")


def test_a_cancelled_build_leaves_no_build_unit(setup: Setup) -> None:
    created = setup.building()
    response = call_delete(f"{setup.api}/api/v1/deployments/{created['id']}", setup.token)
    assert response == 204
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and setup.status_of(created["id"])["status"] != "cancelled":
        time.sleep(0.2)
    assert setup.status_of(created["id"])["status"] == "cancelled"
    assert setup.build_units() == []
    assert setup.through() == (200, "v1")


def test_a_build_a_killed_daemon_left_is_removed_at_its_start(setup: Setup) -> None:
    created = setup.building()
    release = f"/var/lib/dployr/releases/{setup.service_id}/{created['number']}"
    # The build is a unit of its own: a daemon killed with -9 (Restart=on-failure brings it
    # back) cannot stop it, so reconcile does.
    setup.box.exec("systemctl", "kill", "--signal=SIGKILL", "dployr")
    time.sleep(0.5)
    assert setup.build_units() != []
    wait_ready(setup.api)
    ended = setup.status_of(created["id"])
    assert ended["status"] == "failed" and "interrupted" in ended["error"], ended
    assert setup.build_units() == []
    assert setup.box.exec("test", "-e", release, check=False).returncode == 1
    assert setup.through() == (200, "v1")


def test_a_reboot_brings_the_daemon_and_the_app_back(setup: Setup) -> None:
    unit = setup.unit_of_live()
    setup.box.restart()
    wait_ready(setup.api)
    assert setup.box.exec("systemctl", "is-active", "--", unit).stdout.strip() == "active"
    deadline = time.monotonic() + 30
    answer: tuple[int, str] = (0, "")
    while time.monotonic() < deadline:
        try:
            answer = setup.through()
        except OSError:
            answer = (0, "")
        if answer == (200, "v1"):
            break
        time.sleep(0.3)
    assert answer == (200, "v1")
    # The same instance: reconcile found it running and left it alone.
    assert setup.unit_of_live() == unit
    running = setup.box.exec(
        "systemctl", "list-units", "--state=active", "--plain", "--no-legend", "dployr-web-*"
    ).stdout
    assert [line.split()[0] for line in running.splitlines()] == [unit]


def call_delete(url: str, token: str) -> int:
    request = urllib.request.Request(url, method="DELETE")
    request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


def run_load_during(setup: Setup, action: Any) -> LoadResult:
    """Steady GETs through Caddy on a thread of their own while `action` runs."""
    stop = threading.Event()
    holder: dict[str, LoadResult] = {}

    async def drive() -> None:
        async with under_load(setup.caddy.http_port, HOST) as result:
            holder["result"] = result
            while not stop.is_set():
                await asyncio.sleep(0.05)

    thread = threading.Thread(target=asyncio.run, args=(drive(),))
    thread.start()
    try:
        time.sleep(1.0)
        action()
        time.sleep(1.0)
    finally:
        stop.set()
        thread.join(timeout=60)
    return holder["result"]


def test_a_one_line_change_downloads_no_dependency_again(setup: Setup) -> None:
    # The per-service wheel cache, written by the build as the service's user in its sandbox.
    setup.box.exec("tee", f"{REPO}/requirements.txt", input="six==1.16.0\n")
    setup.commit("v3")
    first = setup.deploy()
    assert "Downloading six-1.16.0" in deployment_log(setup, first["id"])
    setup.commit("v4")  # the one-line change
    second = setup.deploy()
    said = deployment_log(setup, second["id"])
    wheels = f"/var/lib/dployr/cache/{setup.service_id}/wheels"
    assert f"Processing {wheels}/six-1.16.0-py2.py3-none-any.whl" in said, said
    assert "Downloading" not in said, said
    assert setup.through() == (200, "v4")
    user = "dployr-" + setup.service_id.split("_", 1)[1]
    assert setup.box.exec("stat", "-c", "%U %a", wheels).stdout.split() == [user, "700"]
    # The git cache beside it stays root's: the daemon's git reads it.
    repo = f"/var/lib/dployr/cache/{setup.service_id}/repo.git"
    assert setup.box.exec("stat", "-c", "%U", repo).stdout.strip() == "root"


def deployment_log(setup: Setup, deployment_id: str) -> str:
    url = f"{setup.api}/api/v1/deployments/{deployment_id}/logs?limit=1000"
    status, body = call(url, None, setup.token)
    assert status == 200, body
    return "\n".join(line["message"] for line in body["logs"])


def test_stop_start_and_delete_leave_no_unit_behind(setup: Setup) -> None:
    box, api, token = setup.box, setup.api, setup.token
    unit = setup.unit_of_live()
    status, body = call(f"{api}/api/v1/services/{setup.service_id}/stop", {}, token)
    assert status == 200, body
    assert box.exec("test", "-e", f"/etc/systemd/system/{unit}", check=False).returncode == 1
    assert box.exec("systemctl", "is-active", "--", unit, check=False).stdout.strip() != "active"
    status, body = call(f"{api}/api/v1/services/{setup.service_id}/start", {}, token)
    assert status == 200, body
    assert setup.through() == (200, "v4")
    request = urllib.request.Request(f"{api}/api/v1/services/{setup.service_id}", method="DELETE")
    request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status in (200, 202, 204)
    assert box.sh("ls /etc/systemd/system | grep '^dployr-web-' || true").stdout == ""
    assert box.sh("ls /var/lib/dployr/units").stdout == ""
    for gone in (f"releases/{setup.service_id}", f"cache/{setup.service_id}"):
        assert box.exec("test", "-e", f"/var/lib/dployr/{gone}", check=False).returncode == 1
    listed = box.exec("systemctl", "list-units", "--all", "--plain", "--no-legend", "dployr-*")
    assert "dployr-web-" not in listed.stdout and "dployr-build-" not in listed.stdout


def test_a_volume_is_bound_at_its_path_and_outlives_a_redeploy(setup: Setup) -> None:
    """SPEC §14: the volume's directory is the service user's, writable under
    ProtectSystem=strict, and the app sees it at its path; its data survives a redeploy."""
    box = setup.box
    volumes = [{"name": "notes", "path": "/srv/notes"}]
    setup.commit("v5")
    first = setup.deploy(volumes=volumes)
    setup.service_id = first["service_id"]
    assert setup.through("/note") == (200, "v5\n")
    setup.commit("v6")
    second = setup.deploy()  # no `volumes`: the service keeps its own
    assert second["volumes"] == volumes
    assert setup.through("/note") == (200, "v5\nv6\n")
    user = "dployr-" + setup.service_id.split("_", 1)[1]
    folder = f"/var/lib/dployr/volumes/{setup.service_id}/notes"
    assert box.exec("stat", "-c", "%U %a", folder).stdout.split() == [user, "700"]
    assert box.exec("cat", f"{folder}/hits").stdout == "v5\nv6\n"
    unit = setup.unit_of_live()
    shown = box.exec("systemctl", "show", "-p", "BindPaths,ReadWritePaths", "--", unit).stdout
    assert f"BindPaths={folder}:/srv/notes" in shown, shown
    assert folder in shown.split("ReadWritePaths=", 1)[1], shown
    env_file = box.exec("cat", f"/var/lib/dployr/units/{unit}.env").stdout
    assert f'DPLOYR_VOLUME_NOTES="{folder}"' in env_file.splitlines()


def test_an_uploaded_directory_runs_as_a_unit(setup: Setup) -> None:
    """source upload (SPEC §4.1) on the systemd target: the archive sent from here is the
    release dir the unit serves."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        page = b"uploaded to systemd\n"
        info = tarfile.TarInfo("index.html")
        info.size = len(page)
        tar.addfile(info, io.BytesIO(page))
    deployment = {"name": "site", "runtime": "static", "target": "systemd"}
    boundary = "dployr-box-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="deployment"\r\n'
            f"Content-Type: application/json\r\n\r\n{json.dumps(deployment)}\r\n"
            f'--{boundary}\r\nContent-Disposition: form-data; name="archive"; '
            f'filename="site.tar.gz"\r\nContent-Type: application/gzip\r\n\r\n'
        ).encode()
        + gzip.compress(raw.getvalue())
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        f"{setup.api}/api/v1/deployments/upload", data=body, method="POST"
    )
    request.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
    request.add_header("Authorization", f"Bearer {setup.token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 202
        created = json.loads(response.read())
    live = setup.wait(created["id"])
    assert live["source"] == "upload" and live["target"] == "systemd"
    assert live["stages"][0]["message"] == "read 1 file, 20 bytes"
    with urllib.request.urlopen(f"http://127.0.0.1:{live['host_port']}/", timeout=10) as served:
        assert served.read() == page
