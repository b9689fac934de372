"""The CLI against a live `dployr serve` on loopback: as a subprocess (what a person runs) and
through `main()` (the same code, in this process)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dployr.cli import main
from tests.docker.conftest import cleanup_agent, engine_answers
from tests.integration.conftest import PASSWORD, Daemon, daemon_env, dployr_command

EMAIL = "admin@example.com"


@dataclass
class Cli:
    """One daemon and a home of our own for cli.toml (XDG_CONFIG_HOME)."""

    daemon: Daemon
    home: Path

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DPLOYR_")}
        env.update(XDG_CONFIG_HOME=str(self.home), COLUMNS="200")
        return env

    def run(
        self, *args: str, stdin: str | None = None, timeout: float = 60, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`dployr ARGS` as a subprocess, as a person's shell runs it."""
        return subprocess.run(
            dployr_command(*args),
            env=self.env,
            input=stdin,
            capture_output=True,
            encoding="utf-8",
            errors="replace",
            timeout=timeout,
            cwd=cwd,
            check=False,
        )

    def ok(self, *args: str, stdin: str | None = None, cwd: Path | None = None) -> str:
        done = self.run(*args, stdin=stdin, cwd=cwd)
        assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
        return done.stdout

    def main(self, *args: str, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
        """`main(ARGS)` in this process: exit code, stdout, stderr."""
        for key in [k for k in os.environ if k.startswith("DPLOYR_")]:
            monkeypatch.delenv(key)
        monkeypatch.setenv("XDG_CONFIG_HOME", str(self.home))
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exit:  # argparse's usage errors
                code = int(exit.code or 0)
        return code, out.getvalue(), err.getvalue()

    def login(self) -> None:
        self.ok("login", "--url", self.daemon.url, "--email", EMAIL, "--password-stdin",
                stdin=PASSWORD + "\n")  # fmt: skip


def _start(tmp: Path, **extra: str) -> Daemon:
    config = tmp / "etc" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("# every key at its default\n")
    data_dir = tmp / "data"
    daemon = Daemon(data_dir, config, daemon_env(data_dir, **extra))
    daemon.start()
    daemon.admin_token(EMAIL)  # the first user: admin
    return daemon


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """A daemon with no engine work to do (proxy none), shared by a module's tests, and a
    logged-in CLI home."""
    tmp = tmp_path_factory.mktemp("cli")
    daemon = _start(tmp)
    cli = Cli(daemon, tmp / "home")
    cli.login()
    try:
        yield cli
    finally:
        daemon.kill()


@pytest.fixture(scope="module")
def deploying(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """The same with the Docker engine and local sources: deploys for real (cleaned by label)."""
    if not engine_answers():
        pytest.fail("no Docker engine answers (scripts/provision starts one)")
    tmp = tmp_path_factory.mktemp("cli-deploy")
    daemon = _start(
        tmp,
        DPLOYR_RUNTIME_ALLOW_LOCAL_SOURCES="true",
        DPLOYR_RUNTIME_DRAIN_SECONDS="0.2",
    )
    cli = Cli(daemon, tmp / "home")
    cli.login()
    try:
        yield cli
    finally:
        daemon.kill()
        cleanup_agent(daemon.data_dir)
