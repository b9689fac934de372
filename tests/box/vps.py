"""A VPS in a box: Debian with systemd as PID 1 in a container on the host's network."""

from __future__ import annotations

import contextlib
import http.server
import logging
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

# Built by scripts/provision (a debootstrapped bookworm minbase with systemd, systemd-sysv, dbus,
# python3, python3-venv, git, curl and the host's CA bundle).
IMAGE = "dployr-test/vps:bookworm-1"
LABEL = "dployr.test=box"
# What systemd needs to be PID 1 in a container here (ENVIRONMENT.md; --privileged fails).
RUN_FLAGS = (
    "--cap-add",
    "SYS_ADMIN",
    "--cap-add",
    "NET_ADMIN",
    "--security-opt",
    "seccomp=unconfined",
    "--security-opt",
    "apparmor=unconfined",
    "--cgroupns=host",
    "-v",
    "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs",
    "/run",
    "--tmpfs",
    "/run/lock",
    "--tmpfs",
    "/tmp",
    # The box shares the host's loopback: it fetches from servers the test runs on the host, and
    # the test reaches what listens inside. So anything listening inside takes a free port.
    "--network",
    "host",
    # systemd halts cleanly on SIGRTMIN+3; on docker's default SIGTERM it would wait out the
    # 10 s stop timeout and be killed, so a `docker restart` would not be a clean reboot.
    "--stop-signal",
    "SIGRTMIN+3",
)
_LOGGER = logging.getLogger(__name__)


def docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False)
    return probe.returncode == 0


def image_exists(image: str = IMAGE) -> bool:
    probe = subprocess.run(
        ["docker", "image", "inspect", image], capture_output=True, timeout=30, check=False
    )
    return probe.returncode == 0


def free_port() -> int:
    """A free port on the host's loopback, which the box shares."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BoxError(Exception):
    """A command in the box failed, or the box did not boot; the message says what it printed."""


class Box:
    """One container with systemd as PID 1: start it, run commands, copy files in and out,
    reboot it.

    Every box carries the label `dployr.test=box` (and `dployr.test.session=<session>`), so a
    test session removes what it made and never what another session runs at the same time.
    """

    def __init__(self, name: str | None = None, *, session: str = "", image: str = IMAGE) -> None:
        self.name = name or f"dployr-box-{uuid.uuid4().hex[:10]}"
        self.session = session
        self.image = image

    def start(self, *, docker_socket: bool = False, extra: Sequence[str] = ()) -> Box:
        """Boot the box and wait until systemd has started everything.

        docker_socket: mount the host's /var/run/docker.sock and copy in the host's `docker`
        CLI, so the box "has Docker" (the host's engine) without a second engine inside."""
        labels = ["--label", LABEL]
        if self.session:
            labels += ["--label", f"dployr.test.session={self.session}"]
        mounts = ["-v", "/var/run/docker.sock:/var/run/docker.sock"] if docker_socket else []
        _docker(
            "run", "-d", "--name", self.name, *labels, *RUN_FLAGS, *mounts, *extra, self.image,
            "/sbin/init",
        )  # fmt: skip
        self.wait_booted()
        cli = shutil.which("docker")
        if docker_socket and cli is not None:
            self.copy_in(Path(cli).resolve(), "/usr/local/bin/docker")
        return self

    def exec(
        self,
        *command: str,
        input: str | None = None,
        env: dict[str, str] | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in the box as root; BoxError (with its output) when it fails."""
        flags = ["-i"] if input is not None else []
        for key, value in (env or {}).items():
            flags += ["-e", f"{key}={value}"]
        done = subprocess.run(
            ["docker", "exec", *flags, self.name, *command],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise BoxError(
                f"{' '.join(command)!r} in {self.name} exited {done.returncode}:\n"
                f"{done.stdout}\n{done.stderr}"
            )
        return done

    def sh(self, script: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        """Run a shell script (`sh -c`) in the box."""
        return self.exec("sh", "-c", script, **kwargs)  # type: ignore[arg-type]

    def wait_booted(self, timeout: float = 120) -> str:
        """Wait for `systemctl is-system-running` to leave `starting`: `running`, or `degraded`
        (a unit failed: logged with the failed units, not an error)."""
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            done = self.exec("systemctl", "is-system-running", check=False, timeout=30)
            state = done.stdout.strip()
            if state in ("running", "degraded"):
                if state == "degraded":
                    failed = self.exec("systemctl", "--failed", "--no-legend", check=False)
                    _LOGGER.warning("box %s is degraded: %s", self.name, failed.stdout.strip())
                return state
            time.sleep(0.5)
        raise BoxError(f"box {self.name} did not boot in {timeout} s (state {state!r})")

    def copy_in(self, source: Path, dest: str) -> None:
        """Copy a host file or directory to `dest` in the box (not under /tmp or /run: tmpfs
        there is emptied by a reboot)."""
        _docker("cp", str(source), f"{self.name}:{dest}")

    def copy_out(self, source: str, dest: Path) -> None:
        """Copy `source` in the box to a host path (what `docker cp` keeps: mode and times)."""
        _docker("cp", f"{self.name}:{source}", str(dest))

    def restart(self, timeout: float = 120) -> str:
        """A reboot: systemd halts, the container starts again, systemd boots; /tmp and /run are
        empty again, the rest of the filesystem is kept."""
        _docker("restart", "-t", "30", self.name, timeout=90)
        return self.wait_booted(timeout)

    def journal(self, unit: str, lines: int = 200) -> str:
        """The unit's last journal lines (for failure messages)."""
        done = self.exec(
            "journalctl", "-u", unit, "-n", str(lines), "--no-pager", check=False, timeout=30
        )
        return done.stdout + done.stderr

    def remove(self) -> None:
        subprocess.run(
            ["docker", "rm", "-f", "-v", self.name], capture_output=True, timeout=60, check=False
        )


def remove_boxes(session: str | None = None) -> None:
    """Remove this session's boxes; with no session, the boxes of earlier runs: stopped for
    more than STALE_MINUTES (a box that runs, or is stopped for a moment while it reboots, may
    belong to another session on the same engine)."""
    filters = ["--filter", f"label={LABEL}"]
    if session:
        filters += ["--filter", f"label=dployr.test.session={session}"]
    else:
        filters += ["--filter", "status=exited"]
    listed = subprocess.run(
        ["docker", "ps", "-aq", *filters], capture_output=True, text=True, timeout=30, check=False
    )
    ids = listed.stdout.split()
    if ids and not session:
        ids = [box for box in ids if _stopped_minutes(box) > STALE_MINUTES]
    if ids:
        subprocess.run(["docker", "rm", "-f", "-v", *ids], capture_output=True, timeout=120)


STALE_MINUTES = 10


def _stopped_minutes(container: str) -> float:
    """How long ago the container stopped (0 when it cannot be told)."""
    done = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Running}} {{.State.FinishedAt}}", container],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    running, _, finished = done.stdout.strip().partition(" ")
    if done.returncode != 0 or running != "false":
        return 0.0
    try:
        # Docker writes nanoseconds; fromisoformat takes up to microseconds.
        stamp = datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", finished))
    except ValueError:
        return 0.0
    return (datetime.now(UTC) - stamp).total_seconds() / 60


def _docker(*args: str, timeout: float = 120) -> str:
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise BoxError(f"docker {args[0]} failed: {done.stderr.strip()}")
    return done.stdout


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        _LOGGER.debug("file server: %s", format % args)


@contextlib.contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    """Serve `directory` over HTTP on a free host loopback port (the box reaches it too);
    yields the base URL."""

    def handler(*args: object, **kwargs: object) -> _QuietHandler:
        return _QuietHandler(*args, directory=str(directory), **kwargs)  # type: ignore[arg-type]

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class Files:
    """install.sh and the checkout's wheel, served on the host's loopback (the box fetches them
    with curl); put more files in `directory` and they are served too."""

    def __init__(self, url: str, directory: Path, wheel: str) -> None:
        self.url, self.directory, self.wheel = url, directory, wheel

    def add_wheelhouse(self) -> None:
        """Download the wheel's dependencies (on the host, once) to `wheels/` here."""
        subprocess.run(
            [
                sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                "-d", str(self.directory / "wheels"), str(self.directory / self.wheel),
            ],
            check=True,
            timeout=300,
        )  # fmt: skip

    def wheelhouse_env(self) -> dict[str, str]:
        """pip settings for install.sh that take every dependency from `wheels/` here, not
        from PyPI (a reinstall in ~5 s instead of ~25 s)."""
        return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": f"{self.url}/wheels/"}

    def install_command(self, *flags: str, source: str | None = None) -> str:
        """The `curl … | sh -s -- --source <wheel> FLAGS` line (no --source with --uninstall)."""
        if source is None and not {"--uninstall", "--purge"} & set(flags):
            source = f"{self.url}/{self.wheel}"
        args = (["--source", source] if source else []) + list(flags)
        return f"curl -fsSL {self.url}/install.sh | sh -s -- {' '.join(args)}"


def run_install(
    box: Box,
    files: Files,
    *flags: str,
    source: str | None = None,
    env: dict[str, str] | None = None,
) -> str:
    """Run install.sh in the box as a user would (curl | sh); what it printed. BoxError with
    its output and the daemon's journal when it fails. env: for install.sh (and its pip)."""
    command = files.install_command(*flags, source=source)
    done = box.sh(command, env=env, timeout=300, check=False)
    if done.returncode != 0:
        raise BoxError(
            f"install.sh {' '.join(flags)} exited {done.returncode}:\n{done.stdout}\n"
            f"{done.stderr}\n{box.journal('dployr')}"
        )
    return done.stdout + done.stderr


def build_wheel(root: Path, dest: Path) -> Path:
    """`pip wheel --no-deps` of the checkout at `root` into `dest`; the wheel's path."""
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--disable-pip-version-check",
            "-w",
            str(dest),
            str(root),
        ],
        check=True,
        timeout=300,
    )
    (wheel,) = dest.glob("dployr-*.whl")
    return wheel
