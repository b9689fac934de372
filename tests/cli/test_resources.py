"""projects, credentials, webhooks and env's local checks from the CLI, against one live
daemon (no engine work); names or ids, and what a missing or ambiguous name says."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.cli.conftest import Cli, _start
from tests.integration.conftest import PASSWORD, dployr_command

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n-----END OPENSSH PRIVATE KEY-----\n"


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """Like `live`, with webhooks allowed to a loopback receiver."""
    tmp = tmp_path_factory.mktemp("cli-resources")
    daemon = _start(tmp, DPLOYR_WEBHOOKS_ALLOW_PRIVATE="true")
    cli = Cli(daemon, tmp / "home")
    cli.login()
    try:
        yield cli
    finally:
        daemon.kill()


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[bytes]]]:
    """A loopback URL that answers 204 to every POST, and the bodies it got."""
    got: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", got
    finally:
        server.shutdown()
        server.server_close()


def _second_user(cli: Cli, email: str) -> Cli:
    """Another account (registered by the admin) with a CLI home of its own."""
    admin = cli.daemon.admin_token()
    status, _ = cli.daemon.request(
        "POST", "/api/v1/auth/register",
        {"name": "Other", "email": email, "password": PASSWORD}, token=admin,
    )  # fmt: skip
    assert status == 201
    other = Cli(cli.daemon, cli.home.parent / "other-home")
    other.ok("login", "--url", cli.daemon.url, "--email", email, "--password-stdin",
             stdin=PASSWORD + "\n")  # fmt: skip
    return other


def test_projects_by_name_or_id_and_an_ambiguous_name(cli: Cli) -> None:
    out = cli.ok("projects", "create", "shared", "--description", "the admin's")
    project_id = next(line.split()[1] for line in out.splitlines() if line.startswith("id "))
    assert "shared" in cli.ok("projects", "ls")
    other = _second_user(cli, "other@example.com")
    other.ok("projects", "create", "shared")
    # The admin sees both: a name that is two projects asks for the id.
    done = cli.run("projects", "rm", "shared")
    assert done.returncode == 1 and "2 projects are named 'shared'" in done.stderr
    assert project_id in done.stderr and "give the id" in done.stderr
    assert f"removed {project_id}" in cli.ok("projects", "rm", project_id)
    assert "removed shared" in other.ok("projects", "rm", "shared")  # its own one: by name
    missing = cli.run("projects", "rm", "shared")
    assert missing.returncode == 1
    assert missing.stderr == "dployr: no project named 'shared'; see `dployr projects ls`\n"
    gone = cli.run("services", "show", "nope")
    assert gone.returncode == 1 and "no service named 'nope'" in gone.stderr


def test_credentials_take_the_secret_from_stdin_or_a_file(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "ghp_not-on-argv-0123456789"
    out = cli.ok("credentials", "add", "gh", "--type", "token", stdin=token + "\n")
    assert "gh" in out and token not in out
    key_file = tmp_path / "deploy_key"
    key_file.write_text(KEY)
    out = cli.ok("credentials", "add", "deploy", "--type", "deploy_key", "--file", str(key_file))
    assert "deploy_key" in out and "PRIVATE KEY" not in out
    code, listed, err = cli.main("credentials", "ls", "--json", monkeypatch=monkeypatch)
    assert (code, err) == (0, "")
    items = json.loads(listed)["items"]
    assert {c["name"] for c in items} == {"gh", "deploy"}
    assert token not in listed and "PRIVATE KEY" not in listed
    # Nothing piped in: nothing stored.
    empty = cli.run("credentials", "add", "none", "--type", "token", stdin="")
    assert empty.returncode == 2 and "no token given" in empty.stderr
    # A registry login: the user as a flag, the password as the other secrets (SPEC §15).
    password = "registry pass-not-on-argv"
    out = cli.ok("credentials", "add", "hub", "--type", "registry", "--username", "me",
                 stdin=password + "\n")  # fmt: skip
    assert "registry" in out and password not in out
    assert password not in cli.ok("credentials", "ls", "--json")
    for argv in (("--type", "registry"), ("--type", "token", "--username", "me")):
        wrong = cli.run("credentials", "add", "x", *argv, stdin="secret")
        assert wrong.returncode == 2 and "--username goes with --type registry" in wrong.stderr
    cli.ok("credentials", "rm", "hub")
    cli.ok("credentials", "rm", "gh")
    cli.ok("credentials", "rm", "deploy")
    assert "no credentials" in cli.ok("credentials", "ls")


def test_webhooks_add_ping_deliveries_redeliver_rm(
    cli: Cli, receiver: tuple[str, list[bytes]]
) -> None:
    url, got = receiver
    out = cli.ok("webhooks", "add", url, "--events", "deployment.succeeded,deployment.failed")
    secret = next(line.split()[1] for line in out.splitlines() if line.startswith("secret "))
    assert secret.startswith("whsec_") and "only time it is shown" in out
    hook_id = next(line.split()[1] for line in out.splitlines() if line.startswith("id "))
    listed = cli.ok("webhooks", "ls")
    assert url in listed and "deployment.succeeded,deployment.failed" in listed
    assert secret not in listed and secret not in cli.ok("webhooks", "ls", "--json")

    assert "queued dlv_" in cli.ok("webhooks", "ping", hook_id)
    deliveries = _delivered(cli, hook_id, 1)
    assert got and json.loads(got[0])["type"] == "ping"
    again = cli.ok("webhooks", "redeliver", hook_id, deliveries[0]["id"])
    assert "queued dlv_" in again
    assert len(_delivered(cli, hook_id, 2)) == 2
    table = cli.ok("webhooks", "deliveries", hook_id)
    assert table.count("delivered") == 2 and "ping" in table

    # A secret of one's own comes from stdin and is not printed back.
    mine = "my-own-secret-of-at-least-24-bytes"
    out = cli.ok("webhooks", "add", url, "--secret-stdin", stdin=mine + "\n")
    assert mine not in out and "only time" not in out
    other_id = next(line.split()[1] for line in out.splitlines() if line.startswith("id "))
    for hook in (hook_id, other_id):
        assert f"removed {hook}" in cli.ok("webhooks", "rm", hook)
    assert "no webhooks" in cli.ok("webhooks", "ls")


def _delivered(cli: Cli, hook_id: str, count: int) -> list[dict[str, object]]:
    deadline = time.monotonic() + 30
    while True:
        items = json.loads(cli.ok("webhooks", "deliveries", hook_id, "--json"))["items"]
        if len(items) >= count and all(d["status"] == "delivered" for d in items):
            return list(items)
        assert time.monotonic() < deadline, items
        time.sleep(0.2)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("web", "FOO"), "not KEY=VALUE: 'FOO'"),
        (("web", "A=1", "1BAD=x"), "'1BAD=x': bad variable name '1BAD'"),
        (("web", "--secret", "NO-DASH"), "bad variable name 'NO-DASH'"),
        (("web",), "give KEY=VALUE pairs, or --secret KEY"),
    ],
)
def test_env_set_checks_its_items_before_sending_any(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], message: str
) -> None:
    # No service named web exists: the check comes first, and nothing is asked of the daemon.
    code, out, err = cli.main("env", "set", *args, monkeypatch=monkeypatch)
    assert (code, out) == (2, "")
    assert message in err and "no service named" not in err


def test_a_removal_asks_on_a_terminal(cli: Cli, tmp_path: Path) -> None:
    """`projects rm --force` tears services down: on a terminal it asks; n keeps the project."""
    cli.ok("projects", "create", "asked")
    for answer, code in ((b"n\n", 1), (b"y\n", 0)):
        seen, status = _on_a_terminal(cli, answer, "projects", "rm", "asked", "--force")
        assert b"tear down its services? [y/N]" in seen and status == code, seen
    assert "asked" not in cli.ok("projects", "ls")
    cli.ok("projects", "create", "piped")
    refused = cli.run("projects", "rm", "piped", "--force", stdin="y\n")  # not a terminal
    assert refused.returncode == 2 and "refusing without --yes" in refused.stderr
    assert "removed piped" in cli.ok("projects", "rm", "piped", "--force", "--yes")


def _on_a_terminal(cli: Cli, answer: bytes, *args: str) -> tuple[bytes, int]:
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        dployr_command(*args), stdin=secondary, stdout=secondary, stderr=secondary,
        env={**cli.env, "TERM": "dumb"}, start_new_session=True,
    )  # fmt: skip
    os.close(secondary)
    seen = b""
    deadline = time.monotonic() + 30
    while b"[y/N]" not in seen and time.monotonic() < deadline:
        if select.select([primary], [], [], 0.5)[0]:
            seen += os.read(primary, 4096)
    os.write(primary, answer)
    status = process.wait(30)
    while select.select([primary], [], [], 0.2)[0]:
        try:
            seen += os.read(primary, 4096)
        except OSError:
            break
    os.close(primary)
    return seen, status
