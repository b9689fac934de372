"""`dployr deploy` and `dployr deployments …` against a real daemon and the Docker engine: one
daemon for the module, as few deploys as prove the points (busybox apps: quick to build)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import pty
import select
import signal
import subprocess
import termios
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import Cli
from tests.integration.conftest import dployr_command

# The whole uploaded directory is served: what the ignore files left out answers 404.
DOCKERFILE = (
    "FROM busybox:stable\nCOPY . /www/\n"
    'CMD ["/bin/sh", "-c", "exec httpd -f -p \\"$PORT\\" -h /www"]\n'
)


# An app from the plain busybox image that serves `ok` on $PORT.
SERVE = 'mkdir /www && echo ok > /www/index.html && exec httpd -f -p "$PORT" -h /www'


def _manifest() -> str:
    """No source: the directory has no git remote, so it is uploaded; no runtime: its
    Dockerfile says."""
    return """name = "site"
port = 8080
health_check = { path = "/", timeout = 60 }
"""


def _api(cli: Cli, method: str, path: str) -> Any:
    status, body = cli.daemon.request(method, f"/api/v1{path}", token=cli.daemon.admin_token())
    assert status < 300, (status, body)
    return body


def _page(cli: Cli, service: str, path: str = "/") -> str:
    found = _api(cli, "GET", f"/services?search={service}")["items"]
    port = next(s["host_port"] for s in found if s["name"] == service)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return str(response.read().decode())
    except urllib.error.HTTPError as err:
        return f"HTTP {err.code}"


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
    (app / "dployr.toml").write_text(_manifest())
    (app / ".gitignore").write_text("*.secret\nbuild/\n")
    (app / ".dockerignore").write_text("notes\n")
    for name in ("db.secret", "build/out.txt", "notes/todo.txt"):
        (app / name).parent.mkdir(exist_ok=True)
        (app / name).write_text("not sent\n")
    return app


@pytest.fixture(scope="module")
def first(deploying: Cli, app: Path) -> subprocess.CompletedProcess[str]:
    """`dployr deploy` in the app's directory (no git remote: an upload), as a person runs it."""
    return deploying.run("deploy", cwd=app, timeout=300)


@pytest.fixture(scope="module")
def second(deploying: Cli, app: Path, first: Any) -> Iterator[tuple[int, str, str]]:
    """A redeploy of a changed page through `main()` in this process."""
    (app / "index.html").write_text("release two\n")
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield deploying.main(
            "deploy", "--manifest", str(app / "dployr.toml"), "--quiet", "--json",
            monkeypatch=monkeypatch,
        )  # fmt: skip


def test_deploy_uploads_a_directory_shows_the_stages_and_goes_live(
    deploying: Cli, first: subprocess.CompletedProcess[str]
) -> None:
    assert first.returncode == 0, (first.stdout, first.stderr)
    out = first.stdout
    # index.html, Dockerfile, dployr.toml, .gitignore, .dockerignore: nothing ignored is sent.
    assert "uploading " in out and ": 5 files, " in out
    assert "(source upload, runtime dockerfile)" in out  # neither named: the directory says
    for stage in ("[fetching ", "[building ", "[starting ", "[health_checking ", "[live 100%]"):
        assert stage in out, out
    assert "COPY . /www/" in out  # the build log, streamed
    # One line per stage: the log's own `==> stage` headers would repeat the stage lines.
    assert out.count("[building ") == 1 and "==> " not in out
    assert f"{_dep_id(out)} is live: http://127.0.0.1:" in out
    assert _page(deploying, "site") == "release one\n"
    for left_out in ("/db.secret", "/build/out.txt", "/notes/todo.txt"):
        assert _page(deploying, "site", left_out) == "HTTP 404"


def test_a_redeploy_through_main_and_the_deployments_commands(
    deploying: Cli, second: tuple[int, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = second
    assert code == 0, (out, err)
    final = json.loads(out)  # --json: the final object on stdout, the progress on stderr
    assert final["status"] == "live" and final["number"] == 2
    assert "[live 100%]" in err and "==> building" not in err  # --quiet: no log
    assert _page(deploying, "site") == "release two\n"
    listing = deploying.ok("deployments", "ls", "--service", "site")
    assert listing.count("live") == 1 and listing.count("superseded") == 1
    dep_id = final["id"]
    shown = deploying.ok("deployments", "show", dep_id)
    assert "health_checking  succeeded" in shown and "number" in shown
    code, log, _ = deploying.main("deployments", "logs", dep_id, monkeypatch=monkeypatch)
    assert code == 0 and "==> switching" in log
    followed = deploying.ok("deployments", "logs", "-f", dep_id)  # ended: the log, then its end
    assert "==> switching" in followed and followed.endswith(f"-- {dep_id} is live\n")
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


@contextlib.contextmanager
def _sockets_taken(cli: Cli, count: int = 8) -> Iterator[None]:
    """Hold the user's `count` WebSockets (server.ws_per_user): the next one gets a 429."""
    import aiohttp

    url = cli.daemon.url.replace("http", "ws", 1) + "/api/v1/ws?token=" + cli.daemon.admin_token()
    loop = asyncio.new_event_loop()
    ready, stop = threading.Event(), asyncio.Event()

    async def hold() -> None:
        async with aiohttp.ClientSession() as session:
            sockets = [await session.ws_connect(url) for _ in range(count)]
            for ws in sockets:  # a pong: the daemon counts it (past auth)
                await ws.send_json({"type": "ping"})
                assert (await ws.receive_json(timeout=10))["type"] == "pong"
            ready.set()
            await stop.wait()
            for ws in sockets:
                await ws.close()

    thread = threading.Thread(target=loop.run_until_complete, args=(hold(),))
    thread.start()
    try:
        assert ready.wait(30)
        yield
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()


def test_a_failed_deployment_exits_1_with_its_error(deploying: Cli, tmp_path: Path) -> None:
    """Followed by polling: the daemon refuses the CLI's socket (the user has 8 open)."""
    with _sockets_taken(deploying):
        done = deploying.run(
            "deploy", "--name", "broken", "--image", "busybox:stable", "--runtime", "image",
            "--port", "8080", "--run-cmd", "sleep 600", "--health-timeout", "2",
            cwd=tmp_path, timeout=120,
        )  # fmt: skip
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "-- no event stream (You have 8 WebSockets open" in done.stdout
    assert "polling every 1 s" in done.stdout
    assert "[health_checking " in done.stdout and "[failed " in done.stdout
    assert "failed at health_checking: " in done.stderr
    assert "Traceback" not in done.stderr
    dep_id = _dep_id(done.stdout)
    assert deploying.ok("deployments", "rm", dep_id) == f"removed {dep_id}\n"
    assert deploying.run("deployments", "show", dep_id).returncode == 1


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
