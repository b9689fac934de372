"""install.sh in a VPS in a box: `curl | sh` from a loopback server, a reboot, an upgrade, removal.

One box for the module, in order: install (its dependencies from PyPI), then what a reboot, a
second run and `--uninstall` do to it (later runs take the dependencies from a wheelhouse
served on loopback: the same packages, fetched once). The box has the host's Docker socket
(so the daemon's readiness proves the unit's sandbox still reaches /var/run/docker.sock);
install.sh runs with --no-docker --no-caddy, so it installs neither.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.box.vps import Box, BoxError, Files, build_wheel, free_port, run_install

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]
ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"


@dataclass
class Installed:
    box: Box
    files: Files  # the loopback server with install.sh and the wheels
    api: str  # the daemon's address (the box shares the host's loopback)
    seconds: float  # from `curl | sh` to the end of install.sh (it waits for /health/ready)
    said: str = ""  # what the first install printed

    def install(self, *flags: str, source: str | None = None, pypi: bool = False) -> str:
        """`curl -fsSL …/install.sh | sh -s -- FLAGS` in the box; what it printed. The
        dependencies come from PyPI with `pypi`, else from the session's wheelhouse."""
        env = None if pypi else self.files.wheelhouse_env()
        try:
            return run_install(self.box, self.files, *flags, source=source, env=env)
        except BoxError as err:
            pytest.fail(str(err))


def call(url: str, body: Any = None, token: str = "") -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def wait_ready(api: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            status, last = call(f"{api}/health/ready")
            if status == 200:
                return dict(last)
        except (OSError, ValueError) as err:
            last = err
        time.sleep(0.5)
    raise AssertionError(f"{api}/health/ready did not answer 200 in {timeout} s: {last}")


def login(api: str) -> str:
    status, body = call(
        f"{api}/api/v1/auth/login", {"email": "ada@example.com", "password": PASSWORD}
    )
    assert status == 200, body
    return str(body["access_token"])


def upgrade_wheel(dest: Path) -> Path:
    """The checkout's wheel with a higher version: what a second run upgrades to."""
    tree = dest / "tree"
    shutil.copytree(
        ROOT,
        tree,
        ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.egg-info", ".*_cache"),
    )
    init = tree / "dployr" / "__init__.py"
    text = init.read_text()
    assert '__version__ = "' in text
    init.write_text(text.replace('__version__ = "', '__version__ = "9999.', 1))
    return build_wheel(tree, dest / "wheel")


@pytest.fixture(scope="module")
def newer_wheel(install_files: Files, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The upgrade's wheel, served next to install.sh; its URL."""
    newer = upgrade_wheel(tmp_path_factory.mktemp("upgrade"))
    shutil.copy(newer, install_files.directory / newer.name)
    return f"{install_files.url}/{newer.name}"


@pytest.fixture(scope="module")
def installed(box_session: str, install_files: Files) -> Iterator[Installed]:
    box = Box(session=box_session)
    try:
        box.start(docker_socket=True)
        port = free_port()
        setup = Installed(box, install_files, f"http://127.0.0.1:{port}", 0.0)
        started = time.monotonic()
        setup.said = setup.install("--no-docker", "--no-caddy", "--port", str(port), pypi=True)
        setup.seconds = time.monotonic() - started
        yield setup
    finally:
        box.remove()


def test_install_runs_the_daemon_under_systemd(installed: Installed) -> None:
    box = installed.box
    assert box.exec("systemctl", "is-active", "dployr").stdout.strip() == "active"
    assert box.exec("systemctl", "is-enabled", "dployr").stdout.strip() == "enabled"
    # install.sh returned after /health/ready answered; the host reaches it over loopback.
    ready = wait_ready(installed.api, timeout=10)
    checks = ready["checks"]
    assert {k: checks[k] for k in ("database", "runtime", "proxy")} == {
        "database": "ok", "runtime": "ok", "proxy": "ok"
    }  # fmt: skip
    # Without swarm services, whether the engine is a swarm manager is said, never a failure.
    assert checks["swarm"] == "ok" or checks["swarm"].startswith("not available: "), checks
    # The config: 0600, generated secret, the port asked for, only keys the daemon knows
    # (the daemon started with it, and `dployr` validates it again here).
    assert box.exec("stat", "-c", "%a %U", "/etc/dployr/config.toml").stdout.split() == [
        "600",
        "root",
    ]
    config = box.exec("cat", "/etc/dployr/config.toml").stdout
    assert f"port = {installed.api.rsplit(':', 1)[1]}" in config
    secret = next(line for line in config.splitlines() if line.startswith("jwt_secret"))
    assert len(secret.split('"')[1]) >= 48
    # o+x only, for the systemd target's apps (their own users) to reach their release dirs.
    assert box.exec("stat", "-c", "%a", "/var/lib/dployr").stdout.strip() == "711"
    assert box.exec("test", "-f", "/var/lib/dployr/dployr.db", check=False).returncode == 0
    # `dployr` is on root's PATH for `dployr admin create-user`, which install.sh names, and
    # then how to reach the loopback-only API from a laptop.
    assert box.exec("dployr", "--version").stdout.startswith("dployr ")
    assert "dployr admin create-user --email" in installed.said
    port = installed.api.rsplit(":", 1)[1]
    assert f"ssh -N -L {port}:127.0.0.1:{port} root@" in installed.said
    # It runs in its own unit's cgroup, and a stop signals it alone (KillMode=mixed).
    main_pid = box.exec("systemctl", "show", "-p", "MainPID", "--value", "dployr").stdout.strip()
    assert (
        box.exec("cat", f"/proc/{main_pid}/cgroup")
        .stdout.strip()
        .endswith("/system.slice/dployr.service")
    )
    kill_mode = box.exec("systemctl", "show", "-p", "KillMode", "--value", "dployr")
    assert kill_mode.stdout.strip() == "mixed"
    # Type=notify: systemd took the daemon's READY=1 and its STATUS= line.
    status = box.exec("systemctl", "show", "-p", "StatusText", "--value", "dployr").stdout
    assert f"127.0.0.1:{installed.api.rsplit(':', 1)[1]}" in status


def test_the_sandbox_keeps_docker_and_unit_files_within_reach(installed: Installed) -> None:
    box = installed.box
    main_pid = box.exec("systemctl", "show", "-p", "MainPID", "--value", "dployr").stdout.strip()
    enter = ["nsenter", "-t", main_pid, "-m", "--"]
    # In the daemon's own mount namespace: unit files and its data dir can be written, the OS
    # cannot, the Docker socket is there (and /health/ready said the engine answers).
    box.exec(*enter, "touch", "/etc/systemd/system/.dployr-probe", "/var/lib/dployr/.probe")
    box.exec(*enter, "rm", "/etc/systemd/system/.dployr-probe", "/var/lib/dployr/.probe")
    denied = box.exec(*enter, "touch", "/usr/.dployr-probe", check=False)
    assert denied.returncode != 0
    assert "Read-only file system" in denied.stderr
    assert box.exec(*enter, "test", "-S", "/var/run/docker.sock", check=False).returncode == 0


def test_a_reboot_brings_the_daemon_back_with_its_users(installed: Installed) -> None:
    status, body = call(
        f"{installed.api}/api/v1/auth/register",
        {"name": "Ada", "email": "ada@example.com", "password": PASSWORD},
    )
    assert status == 201, body
    installed.box.restart()
    wait_ready(installed.api)
    assert installed.box.exec("systemctl", "is-active", "dployr").stdout.strip() == "active"
    status, me = call(f"{installed.api}/api/v1/auth/me", token=login(installed.api))
    assert status == 200, me
    assert me["email"] == "ada@example.com"


def test_a_second_run_upgrades_in_place_and_keeps_config_and_data(
    installed: Installed, newer_wheel: str
) -> None:
    box = installed.box
    config_before = box.exec("cat", "/etc/dployr/config.toml").stdout
    # What went missing since is put back (from the distribution's archive).
    box.exec("dpkg", "--purge", "git")
    said = installed.install("--no-docker", "--no-caddy", source=newer_wheel)
    assert "installing git" in said
    assert box.exec("git", "--version").stdout.startswith("git version")
    assert "keeping /etc/dployr/config.toml" in said
    assert box.exec("cat", "/etc/dployr/config.toml").stdout == config_before
    status, health = call(f"{installed.api}/health")
    assert status == 200
    assert health["version"].startswith("9999.")  # the new package runs
    status, me = call(f"{installed.api}/api/v1/auth/me", token=login(installed.api))
    assert status == 200, me  # the same database, and the same jwt_secret signed the token


def test_a_run_after_the_os_python_moved_makes_the_venv_again(installed: Installed) -> None:
    box = installed.box
    # As after a distribution upgrade: the venv's interpreter link points at nothing.
    box.exec("ln", "-sf", "/usr/bin/python3.99", "/opt/dployr/bin/python3")
    said = installed.install("--no-docker", "--no-caddy")
    assert "creating the virtualenv /opt/dployr" in said
    wait_ready(installed.api, timeout=10)
    status, me = call(f"{installed.api}/api/v1/auth/me", token=login(installed.api))
    assert status == 200, me


def test_uninstall_removes_the_service_and_keeps_config_and_data(installed: Installed) -> None:
    box = installed.box
    said = installed.install("--uninstall")
    assert "kept /etc/dployr and /var/lib/dployr" in said
    assert box.exec("test", "-e", "/etc/systemd/system/dployr.service", check=False).returncode
    assert box.exec("systemctl", "is-active", "dployr", check=False).stdout.strip() != "active"
    assert box.exec("test", "-e", "/opt/dployr", check=False).returncode == 1
    assert box.exec("test", "-e", "/usr/local/bin/dployr", check=False).returncode == 1
    box.exec("test", "-f", "/var/lib/dployr/dployr.db")
    box.exec("test", "-f", "/etc/dployr/config.toml")
    with pytest.raises(OSError):
        call(f"{installed.api}/health")
    # What was kept is what a new install starts from: the same users, the same secret.
    installed.install("--no-docker", "--no-caddy")
    status, me = call(f"{installed.api}/api/v1/auth/me", token=login(installed.api))
    assert status == 200, me


APP_UNIT = """[Service]
ExecStart=/bin/sleep infinity
[Install]
WantedBy=multi-user.target
"""


def _docker(*args: str) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_purge_removes_everything_and_the_apps(installed: Installed) -> None:
    box = installed.box
    # What the targets leave running: a systemd-target unit and its service's user, and a
    # container and an image labelled with this data dir's agent id (on the host's engine).
    box.sh(
        "cd /etc/systemd/system && cat > dployr-web-1-0a1b2c.service && "
        "cp dployr-web-1-0a1b2c.service dployr-notes.service && systemctl daemon-reload && "
        "systemctl enable --now dployr-web-1-0a1b2c.service",
        input=APP_UNIT,
    )
    box.exec(
        "useradd", "--system", "--user-group", "--no-create-home", "--home-dir",
        "/var/lib/dployr/releases/svc_0123456789abcdef", "--shell", "/usr/sbin/nologin",
        "dployr-0123456789abcdef",
    )  # fmt: skip
    box.exec("useradd", "--system", "--home-dir", "/srv/other", "dployr-other")
    agent = box.exec("cat", "/var/lib/dployr/agent_id").stdout.strip()
    marker = f"dployr.test.purge={uuid.uuid4().hex[:8]}"
    ours = _docker("create", "--label", f"dployr.agent={agent}", "--label", marker,
                   "busybox:stable", "sleep", "1")  # fmt: skip
    theirs = _docker("create", "--label", "dployr.agent=agt_someone_else", "--label", marker,
                     "busybox:stable", "sleep", "1")  # fmt: skip
    image = subprocess.run(
        ["docker", "build", "-q", "--label", f"dployr.agent={agent}", "--label", marker, "-"],
        input="FROM busybox:stable\n", capture_output=True, text=True, timeout=120,
    ).stdout.strip()  # fmt: skip
    try:
        said = installed.install("--purge")
        assert "removing the app unit dployr-web-1-0a1b2c.service" in said
        assert box.exec("systemctl", "is-active", "dployr-web-1-0a1b2c", check=False).returncode
        assert box.exec("test", "-e", "/etc/systemd/system/dployr-web-1-0a1b2c.service",
                        check=False).returncode == 1  # fmt: skip
        assert box.exec("id", "dployr-0123456789abcdef", check=False).returncode != 0
        left = _docker("ps", "-aq", "--no-trunc", "--filter", f"label={marker}")
        assert left.split() == [theirs]
        assert _docker("images", "-q", "--filter", f"label={marker}") == ""
        # Not dployr's: a unit of another pattern and a user whose home is elsewhere.
        box.exec("test", "-e", "/etc/systemd/system/dployr-notes.service")
        box.exec("id", "dployr-other")
        assert box.exec("test", "-e", "/etc/systemd/system/dployr.service", check=False).returncode
        assert box.exec("test", "-e", "/opt/dployr", check=False).returncode == 1
        assert box.exec("test", "-e", "/var/lib/dployr", check=False).returncode == 1
        assert box.exec("test", "-e", "/etc/dployr", check=False).returncode == 1
    finally:
        subprocess.run(["docker", "rm", "-f", ours, theirs], capture_output=True, timeout=60)
        if image:
            subprocess.run(["docker", "rmi", "-f", image], capture_output=True, timeout=60)
