"""login/logout/whoami/tokens, cli.toml, and the errors every client command shares."""

from __future__ import annotations

import fcntl
import http.server
import os
import pty
import select
import stat
import subprocess
import termios
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from dployr.cli.client import Api, Settings
from tests.cli.conftest import EMAIL, Cli, _start
from tests.integration.conftest import PASSWORD, dployr_command, free_port


def _settings(cli: Cli) -> dict[str, str]:
    return tomllib.loads((cli.home / "dployr" / "cli.toml").read_text())


def test_login_keeps_url_and_token_in_a_0600_file(live: Cli) -> None:
    path = live.home / "dployr" / "cli.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    stored = _settings(live)
    assert stored["url"] == live.daemon.url
    assert stored["token"] and stored["refresh_token"] and stored["email"] == EMAIL
    assert EMAIL in live.ok("whoami")


def test_whoami_through_main(live: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = live.main("whoami", "--json", monkeypatch=monkeypatch)
    assert (code, err) == (0, "")
    assert '"email": "admin@example.com"' in out


def test_flags_and_env_override_the_file(live: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    token = live.daemon.admin_token()
    # A wrong URL in the environment loses to --url; a wrong token in the file loses to env.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(live.home))
    code, out, _ = live.main(
        "whoami", "--url", live.daemon.url, "--token", token, monkeypatch=monkeypatch
    )
    assert code == 0 and EMAIL in out
    env = {**live.env, "DPLOYR_URL": "http://127.0.0.1:1", "DPLOYR_TOKEN": "nope"}
    done = subprocess.run(
        dployr_command("whoami", "--url", live.daemon.url, "--token", token),
        env=env, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = subprocess.run(
        dployr_command("whoami"), env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 3  # DPLOYR_URL wins over the file: nothing answers there
    assert "cannot reach the dployr daemon at http://127.0.0.1:1" in done.stderr


def test_a_wrong_token_is_one_line_and_exit_4(live: Cli) -> None:
    done = live.run("services", "ls", "--token", "dpl_wrong")
    assert done.returncode == 4
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "dployr login" in done.stderr


def test_a_down_daemon_is_one_line_and_exit_3(live: Cli) -> None:
    done = live.run("services", "ls", "--url", f"http://127.0.0.1:{free_port()}", "--token", "x")
    assert done.returncode == 3
    assert done.stderr.startswith("dployr: cannot reach the dployr daemon")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_bad_flags_exit_2_with_usage(live: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    done = live.run("services", "ls", "--no-such-flag")
    assert done.returncode == 2 and "unrecognized arguments: --no-such-flag" in done.stderr
    code, _, err = live.main("tokens", "create", monkeypatch=monkeypatch)
    assert code == 2 and "the following arguments are required: name" in err
    done = live.run("whoami", "--url", "ftp://example.com")
    assert done.returncode == 2 and "not a daemon URL" in done.stderr


def test_tokens_create_ls_rm_and_login_with_one(live: Cli, tmp_path: Path) -> None:
    out = live.ok("tokens", "create", "ci")
    token = next(line for line in out.splitlines() if line.startswith("dpl_"))
    token_id = next(line.split()[1] for line in out.splitlines() if line.startswith("id "))
    assert token_id in live.ok("tokens", "ls")
    other = Cli(live.daemon, tmp_path / "ci-home")
    other.ok("login", "--url", live.daemon.url, "--token", token)
    assert _settings(other)["token"] == token and _settings(other)["refresh_token"] == ""
    assert EMAIL in other.ok("whoami")
    live.ok("tokens", "rm", token_id)
    assert other.run("whoami").returncode == 4
    gone = live.run("tokens", "rm", token_id)
    assert gone.returncode == 1 and "check the name or id" in gone.stderr


def test_a_wrong_password_changes_nothing(live: Cli) -> None:
    before = _settings(live)
    done = live.run("login", "--url", live.daemon.url, "--email", EMAIL, "--password-stdin",
                    stdin="wrong password\n")  # fmt: skip
    assert done.returncode == 4 and "Traceback" not in done.stderr
    assert _settings(live) == before


def test_an_expired_access_token_is_renewed_and_saved(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = _start(tmp_path_factory.mktemp("short"), DPLOYR_AUTH_ACCESS_TTL="1")
    try:
        cli = Cli(daemon, tmp_path_factory.mktemp("short-home"))
        cli.login()
        first = _settings(cli)
        time.sleep(2.1)  # past the access token's 1 s life (its exp has second resolution)
        assert EMAIL in cli.ok("whoami")
        renewed = _settings(cli)
        assert renewed["token"] != first["token"]
        assert renewed["refresh_token"] != first["refresh_token"]  # rotated, and kept
        time.sleep(2.1)
        assert EMAIL in cli.ok("whoami")  # the saved pair works again
        # Two commands that read cli.toml before either renewed the token: the second must
        # not present the refresh token the first just spent (that revokes the session).
        monkeypatch.setenv("XDG_CONFIG_HOME", str(cli.home))
        time.sleep(2.1)
        first_cmd, second_cmd = Api(Settings.load()), Api(Settings.load())
        assert first_cmd.get("/auth/me")["email"] == EMAIL  # renews and saves
        assert second_cmd.get("/auth/me")["email"] == EMAIL  # takes the saved pair
        assert EMAIL in cli.ok("whoami")
    finally:
        daemon.kill()


def test_logout_revokes_and_forgets(tmp_path: Path, live: Cli) -> None:
    cli = Cli(live.daemon, tmp_path / "home")
    cli.login()
    token = _settings(cli)["token"]
    assert "logged out of" in cli.ok("logout")
    assert _settings(cli)["token"] == ""
    done = cli.run("whoami")
    assert done.returncode == 4 and "not logged in" in done.stderr
    assert cli.run("whoami", "--token", token).returncode == 4  # revoked on the daemon


def test_login_asks_without_echoing_the_password(live: Cli, tmp_path: Path) -> None:
    """On a terminal: the email is asked, the password is read with echo off."""
    primary, secondary = pty.openpty()

    def controlling_tty() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    env = {**Cli(live.daemon, tmp_path / "tty-home").env, "TERM": "dumb"}
    process = subprocess.Popen(
        dployr_command("login", "--url", live.daemon.url),
        stdin=secondary, stdout=secondary, stderr=secondary, env=env,
        start_new_session=True, preexec_fn=controlling_tty,
    )  # fmt: skip
    os.close(secondary)
    seen = b""

    def read_until(marker: bytes) -> None:
        nonlocal seen
        deadline = time.monotonic() + 30
        while marker not in seen and time.monotonic() < deadline:
            if select.select([primary], [], [], 0.5)[0]:
                try:
                    seen += os.read(primary, 4096)
                except OSError:
                    return

    read_until(b"Email: ")
    os.write(primary, EMAIL.encode() + b"\n")
    read_until(b"Password: ")
    os.write(primary, PASSWORD.encode() + b"\n")
    read_until(b"logged in to")
    read_until(b"cli.toml")
    assert process.wait(30) == 0, seen
    os.close(primary)
    assert b"logged in to" in seen
    assert PASSWORD.encode() not in seen  # the email is echoed as typed; the password never


class _Catcher(http.server.BaseHTTPRequestHandler):
    """Something that is not dployr at a URL: records what it was sent, answers `body`."""

    seen: list[tuple[str, str | None]] = []
    body = b"<html>hello</html>"

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization")))
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def catcher() -> Iterator[tuple[str, type[_Catcher]]]:
    handler = type("Catcher", (_Catcher,), {"seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_the_stored_token_goes_only_to_its_own_daemon(
    live: Cli, catcher: tuple[str, type[_Catcher]]
) -> None:
    url, handler = catcher
    done = live.run("whoami", "--url", url)
    assert done.returncode == 4 and f"not logged in to {url}" in done.stderr
    env_url = subprocess.run(
        dployr_command("whoami"), env={**live.env, "DPLOYR_URL": url},
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert env_url.returncode == 4
    assert handler.seen == []  # neither the access token nor the refresh token was sent
    assert EMAIL in live.ok("whoami")  # the file's own daemon still gets them


def test_something_else_at_the_url_is_one_line(
    live: Cli, catcher: tuple[str, type[_Catcher]]
) -> None:
    url, handler = catcher
    done = live.run("services", "ls", "--url", url, "--token", "x")
    assert done.returncode == 3 and "is not dployr's JSON" in done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1
    handler.body = b"{}"  # JSON, but not what a page of services looks like
    for command in (("services", "ls"), ("whoami",), ("status",)):
        done = live.run(*command, "--url", url, "--token", "x")
        assert done.returncode == 3, (command, done.stderr)
        assert "lacks what this client expects" in done.stderr and "Traceback" not in done.stderr


def test_login_reads_an_api_token_from_stdin(live: Cli, tmp_path: Path) -> None:
    out = live.ok("tokens", "create", "stdin")
    token = next(line for line in out.splitlines() if line.startswith("dpl_"))
    other = Cli(live.daemon, tmp_path / "home")
    other.ok("login", "--url", live.daemon.url, "--token-stdin", stdin=token + "\n")
    assert _settings(other)["token"] == token
    assert EMAIL in other.ok("whoami")
