"""`dployr deploy` and `dployr deployments …` against a real daemon and the Docker engine: one
daemon for the module, as few deploys as prove the points (busybox apps: quick to build)."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import subprocess
import termios
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import Cli
from tests.integration.conftest import dployr_command

DOCKERFILE = (
    "FROM busybox:stable\nCOPY index.html /www/index.html\n"
    'CMD ["/bin/sh", "-c", "exec httpd -f -p \\"$PORT\\" -h /www"]\n'
)


# An app from the plain busybox image that serves `ok` on $PORT.
SERVE = 'mkdir /www && echo ok > /www/index.html && exec httpd -f -p "$PORT" -h /www'


def _manifest(app: Path) -> str:
    return f"""name = "site"
source = "local"
path = "{app}"
runtime = "dockerfile"
port = 8080
health_check = {{ path = "/", timeout = 60 }}
"""


def _api(cli: Cli, method: str, path: str) -> Any:
    status, body = cli.daemon.request(method, f"/api/v1{path}", token=cli.daemon.admin_token())
    assert status < 300, (status, body)
    return body


def _page(cli: Cli, service: str) -> str:
    found = _api(cli, "GET", f"/services?search={service}")["items"]
    port = next(s["host_port"] for s in found if s["name"] == service)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
        return str(response.read().decode())


def _wait_status(cli: Cli, dep_id: str, wanted: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        deployment = _api(cli, "GET", f"/deployments/{dep_id}")
        if deployment["status"] == wanted or time.monotonic() > deadline:
            assert deployment["status"] == wanted, deployment
            return dict(deployment)
        time.sleep(0.5)


def _dep_id(output: str) -> str:
    return next(w.rstrip(":") for w in output.split() if w.startswith("dep_"))


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    app = tmp_path_factory.mktemp("site")
    (app / "Dockerfile").write_text(DOCKERFILE)
    (app / "index.html").write_text("release one\n")
    (app / "dployr.toml").write_text(_manifest(app))
    return app


@pytest.fixture(scope="module")
def first(deploying: Cli, app: Path) -> subprocess.CompletedProcess[str]:
    """`dployr deploy` in the app's directory, as a person runs it."""
    return deploying.run("deploy", cwd=app, timeout=300)


@pytest.fixture(scope="module")
def second(deploying: Cli, app: Path, first: Any) -> Iterator[tuple[int, str, str]]:
    """A redeploy of a changed page through `main()` in this process."""
    (app / "index.html").write_text("release two\n")
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield deploying.main(
            "deploy", "--manifest", str(app / "dployr.toml"), "--quiet", monkeypatch=monkeypatch
        )


def test_deploy_from_a_manifest_shows_the_stages_and_goes_live(
    deploying: Cli, first: subprocess.CompletedProcess[str]
) -> None:
    assert first.returncode == 0, (first.stdout, first.stderr)
    out = first.stdout
    for stage in ("[fetching ", "[building ", "[starting ", "[health_checking ", "[live 100%]"):
        assert stage in out, out
    assert "==> building" in out  # the build log, streamed
    assert "COPY index.html" in out
    assert f"{_dep_id(out)} is live: http://127.0.0.1:" in out
    assert _page(deploying, "site") == "release one\n"


def test_a_redeploy_through_main_and_the_deployments_commands(
    deploying: Cli, second: tuple[int, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = second
    assert code == 0, (out, err)
    assert "[live 100%]" in out and "==> building" not in out  # --quiet: no log
    assert _page(deploying, "site") == "release two\n"
    listing = deploying.ok("deployments", "ls", "--service", "site")
    assert listing.count("live") == 1 and listing.count("superseded") == 1
    dep_id = _dep_id(out)
    shown = deploying.ok("deployments", "show", dep_id)
    assert "health_checking  succeeded" in shown and "number" in shown
    code, log, _ = deploying.main("deployments", "logs", dep_id, monkeypatch=monkeypatch)
    assert code == 0 and "==> switching" in log
    refused = deploying.run("deployments", "cancel", dep_id)
    assert refused.returncode == 2 and "nothing to cancel" in refused.stderr


def test_rollback_on_a_terminal_draws_the_bar(
    deploying: Cli, first: subprocess.CompletedProcess[str], second: Any
) -> None:
    primary, secondary = pty.openpty()

    def controlling_tty() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    process = subprocess.Popen(
        dployr_command("deployments", "rollback", _dep_id(first.stdout)),
        stdin=secondary, stdout=secondary, stderr=secondary,
        env={**deploying.env, "TERM": "xterm-256color"},
        start_new_session=True, preexec_fn=controlling_tty,
    )  # fmt: skip
    os.close(secondary)
    seen = b""
    while process.poll() is None or select.select([primary], [], [], 0.2)[0]:
        if select.select([primary], [], [], 0.5)[0]:
            try:
                seen += os.read(primary, 65536)
            except OSError:
                break
    os.close(primary)
    text = seen.decode("utf-8", "replace")
    assert process.wait(10) == 0, text
    assert "━" in text and "100%" in text  # rich's bar and its percent
    assert "\x1b[" in text  # drawn in place with terminal control sequences
    assert _page(deploying, "site") == "release one\n"


def test_a_failed_deployment_exits_1_with_its_error(deploying: Cli, tmp_path: Path) -> None:
    done = deploying.run(
        "deploy", "--name", "broken", "--image", "busybox:stable", "--runtime", "image",
        "--port", "8080", "--run-cmd", "sleep 600", "--health-timeout", "2",
        cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "failed at health_checking: " in done.stderr
    assert "Traceback" not in done.stderr


def _interrupted(deploying: Cli, tmp_path: Path, name: str, *extra: str) -> tuple[str, str]:
    """A deploy that takes a while to become healthy, interrupted once it is starting."""
    process = subprocess.Popen(
        dployr_command(
            "deploy", "--name", name, "--image", "busybox:stable", "--runtime", "image",
            "--port", "8080", "--run-cmd", f"sleep 8; {SERVE}",
            "--health-timeout", "60", *extra,
        ),
        env=deploying.env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert process.stdout is not None
    out = ""
    for line in process.stdout:
        out += line
        if line.startswith("[health_checking"):
            break
    process.send_signal(signal.SIGINT)
    rest, err = process.communicate(timeout=60)
    assert process.returncode == 130, (out + rest, err)
    return _dep_id(out), err


def test_ctrl_c_detaches_and_the_deployment_goes_on(deploying: Cli, tmp_path: Path) -> None:
    dep_id, err = _interrupted(deploying, tmp_path, "patient")
    assert f"detached: {dep_id} goes on" in err
    assert f"dployr deployments logs -f {dep_id}" in err
    _wait_status(deploying, dep_id, "live")


def test_ctrl_c_with_cancel_on_interrupt_cancels(deploying: Cli, tmp_path: Path) -> None:
    dep_id, err = _interrupted(deploying, tmp_path, "impatient", "--cancel-on-interrupt")
    assert f"cancelled {dep_id}" in err
    _wait_status(deploying, dep_id, "cancelled")
