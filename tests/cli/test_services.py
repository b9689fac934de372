"""services, env, routes and databases from the CLI against one daemon with one real app
(FROM busybox, on the Docker engine) and one redis database, shared by the module's tests in
order: the last one removes the app."""

from __future__ import annotations

import json
import select
import signal
import subprocess
import time
import urllib.request
from typing import IO, Any

import pytest

from tests.cli.conftest import Cli
from tests.docker.conftest import make_repo
from tests.integration.conftest import deploy_live, dployr_command

# The app writes its env to a file it serves, and a line to stdout every second.
START = """#!/bin/sh
printf 'GREETING=%s\\nTOKEN=%s\\n' "$GREETING" "$TOKEN" > /www/env.txt
(while true; do echo "tick from $HOSTNAME"; sleep 1; done) &
exec httpd -f -p "$PORT" -h /www
"""
APP = {
    "Dockerfile": "FROM busybox:stable\nCOPY index.html /www/\nCOPY start /start\n"
    'CMD ["/bin/sh", "/start"]\n',
    "start": START,
    "index.html": "ok\n",
}


@pytest.fixture(scope="module")
def app(deploying: Cli, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The service `hello`, live (deployed through the API: `dployr deploy` is tested apart)."""
    repo = make_repo(tmp_path_factory.mktemp("hello") / "repo", APP)
    body = {"name": "hello", "source": "local", "path": str(repo), "branch": "main",
            "runtime": "dockerfile", "port": 8080, "volumes": [{"name": "data", "path": "/data"}],
            "health_check": {"path": "/index.html", "timeout": 30}}  # fmt: skip
    token = deploying.daemon.admin_token()
    return deploy_live(deploying.daemon, token, body)


def _json(cli: Cli, *args: str) -> Any:
    return json.loads(cli.ok(*args, "--json"))


def _served(cli: Cli, path: str) -> str:
    port = _json(cli, "services", "status", "hello")["host_port"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
        return str(answer.read().decode())


def test_services_ls_show_status_volumes(
    deploying: Cli, app: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    listed = deploying.ok("services", "ls")
    assert "hello" in listed and "running" in listed and app["service_id"] in listed
    code, shown, err = deploying.main("services", "show", "hello", monkeypatch=monkeypatch)
    assert (code, err) == (0, "")
    assert app["service_id"] in shown and "data:/data" in shown and "hook url" in shown
    status = deploying.ok("services", "status", app["service_id"])  # an id works as well
    assert "running" in status and "replicas" not in status  # a docker service: one instance
    # scale is for swarm services (SPEC §15): the API's 400 says so, exit 1.
    scaled = deploying.run("services", "scale", "hello", "2")
    assert scaled.returncode == 1 and "scale is for swarm services" in scaled.stderr, scaled
    usage = deploying.run("services", "scale", "hello", "0")
    assert usage.returncode == 2 and "give a number of tasks, 1-100" in usage.stderr, usage
    volumes = deploying.ok("services", "volumes", "hello")
    assert "data" in volumes and "/data" in volumes
    assert _json(deploying, "services", "volumes", "hello")["items"][0]["name"] == "data"


def test_logs_and_logs_follow_until_ctrl_c(deploying: Cli, app: dict[str, Any]) -> None:
    deadline = time.monotonic() + 30
    while "tick from" not in deploying.ok("services", "logs", "hello", "--tail", "5"):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    with subprocess.Popen(
        dployr_command("services", "logs", "-f", "hello", "--tail", "0"),
        env=deploying.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    ) as follow:  # fmt: skip
        try:
            assert follow.stdout is not None and follow.stderr is not None
            line = _next_line(follow.stdout)
            stamp, stream, message = line.split(" ", 2)
            assert stamp.startswith("20") and stream == "stdout"
            assert message.startswith("tick from ")
            # A restart ends the instance's stream: the new instance (another hostname) follows.
            first = message.split()[2]
            deploying.ok("services", "restart", "hello")
            while (line := _next_line(follow.stdout)).split()[4] == first:
                pass
            assert line.split()[2:4] == ["tick", "from"]
            follow.send_signal(signal.SIGINT)
            assert follow.wait(30) == 130
            assert b"Traceback" not in follow.stderr.read()
        finally:
            if follow.poll() is None:
                follow.kill()


def _next_line(stdout: IO[bytes], limit: float = 60) -> str:
    ready, _, _ = select.select([stdout], [], [], limit)
    assert ready, f"no line within {limit} s"
    return stdout.readline().decode()


def test_env_set_secret_from_stdin_restart_and_unset(deploying: Cli, app: dict[str, Any]) -> None:
    secret = "s3cret value with spaces"
    out = deploying.ok("env", "set", "hello", "GREETING=hi there")
    assert "set GREETING" in out and "next deploy or restart" in out
    out = deploying.ok("env", "set", "hello", "--secret", "TOKEN", stdin=secret + "\n")
    assert secret not in out
    listed = deploying.ok("env", "ls", "hello")
    assert "hi there" in listed and "********" in listed and secret not in listed
    assert secret not in deploying.ok("env", "ls", "hello", "--json")
    assert "GREETING=\n" in _served(deploying, "/env.txt")  # not applied yet
    assert "running" in deploying.ok("services", "restart", "hello")
    # The app sees both; the secret exactly as piped, less its one trailing newline.
    assert _served(deploying, "/env.txt") == f"GREETING=hi there\nTOKEN={secret}\n"
    assert "restarted without it" in deploying.ok("env", "unset", "hello", "GREETING", "--apply")
    assert _served(deploying, "/env.txt") == f"GREETING=\nTOKEN={secret}\n"


def test_stop_and_start(deploying: Cli, app: dict[str, Any]) -> None:
    assert deploying.ok("services", "stop", "hello").strip() == "hello: stopped"
    again = deploying.run("services", "stop", "hello")
    assert again.returncode == 1 and "already stopped" in again.stderr
    assert deploying.ok("services", "start", "hello").startswith("hello: running on port ")
    assert "running" in deploying.ok("services", "status", "hello")


def test_routes_add_ls_rm_by_domain_or_id(deploying: Cli, app: dict[str, Any]) -> None:
    out = deploying.ok("routes", "add", "hello.localhost", "hello")
    assert "hello.localhost" in out and "off" in out  # .localhost: plain HTTP
    api = _json(deploying, "routes", "add", "hello.localhost", "hello", "--path-prefix", "/api")
    listed = deploying.ok("routes", "ls", "--service", "hello")
    assert listed.count("hello.localhost") == 2 and " hello " in listed  # the service's name
    both = deploying.run("routes", "rm", "hello.localhost")
    assert both.returncode == 1 and "2 routes are for 'hello.localhost'" in both.stderr
    assert f"removed {api['id']}" in deploying.ok("routes", "rm", api["id"])
    assert "removed hello.localhost" in deploying.ok("routes", "rm", "hello.localhost")
    assert "no routes" in deploying.ok("routes", "ls")


def test_a_database_from_create_to_rm(deploying: Cli, app: dict[str, Any]) -> None:
    made = deploying.ok("databases", "create", "cache", "--engine", "redis")
    password = next(line.split()[1] for line in made.splitlines() if line.startswith("password"))
    assert "only time it is shown" in made and "cache is running on 127.0.0.1:" in made
    listed = deploying.ok("databases", "ls")
    assert "cache" in listed and "running" in listed and password not in listed
    assert password not in deploying.ok("databases", "show", "cache")

    assert "DATABASE_URL" in deploying.ok("databases", "link", "cache", "hello")
    linked = deploying.run("databases", "rm", "cache", "--yes")
    assert linked.returncode == 1 and "unlink it (dployr databases unlink cache" in linked.stderr
    assert "or pass --force" in linked.stderr

    assert "no backups of cache yet" in deploying.ok("databases", "backups", "cache")
    took = deploying.ok("databases", "backup", "cache")
    backup_id = took.split()[1]
    assert backup_id.startswith("bak_") and " B" in took
    assert "succeeded" in deploying.ok("databases", "backups", "cache")
    restored = deploying.ok("databases", "restore", "cache", backup_id, "--yes")
    assert f"restored from {backup_id}, running" in restored

    assert "unlinked" in deploying.ok("databases", "unlink", "cache", "hello")
    assert "removed cache" in deploying.ok("databases", "rm", "cache", "--yes")
    assert "no databases" in deploying.ok("databases", "ls")


def test_services_rm_asks_and_refuses_without_a_terminal(
    deploying: Cli, app: dict[str, Any]
) -> None:
    refused = deploying.run("services", "rm", "hello", stdin="")
    assert refused.returncode == 2 and "refusing without --yes" in refused.stderr
    assert "hello" in deploying.ok("services", "ls")
    assert "removed hello" in deploying.ok("services", "rm", "hello", "--yes")
    assert "no services yet" in deploying.ok("services", "ls")
    gone = deploying.run("services", "logs", "hello")
    assert gone.returncode == 1 and "no service named 'hello'" in gone.stderr
