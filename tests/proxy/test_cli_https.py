"""The CLI over HTTPS to the daemon's API behind a real Caddy (proxy.api_domain), certificate
checked against Caddy's local CA (SSL_CERT_FILE, as an operator with a private CA would set).
Only the name is ours: api.test is resolved to 127.0.0.1 inside this process."""

from __future__ import annotations

import io
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import Cli
from tests.host.test_process_daemon import APP
from tests.integration.conftest import PASSWORD, Daemon
from tests.proxy.conftest import Caddy
from tests.proxy.test_api_domain import DOMAIN, EMAIL, ApiOverHttps, behind

pytestmark = pytest.mark.integration


@pytest.fixture
def https_daemon(tmp_path: Path, caddy: Caddy) -> Iterator[Daemon]:
    daemon = behind(tmp_path, caddy.proxy_config(api_domain=DOMAIN))
    try:
        yield daemon
    finally:
        daemon.kill()


def test_login_and_commands_over_https_through_caddy(
    https_daemon: Daemon, caddy: Caddy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    https_daemon.start()
    api = ApiOverHttps(caddy)
    api.wait_served()
    status, _ = api.request(
        "POST", "/api/v1/auth/register", {"name": "A", "email": EMAIL, "password": PASSWORD}
    )
    assert status == 201

    resolve = socket.getaddrinfo

    def to_loopback(host: Any, *args: Any, **kwargs: Any) -> Any:
        return resolve("127.0.0.1" if host == DOMAIN else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", to_loopback)
    cli = Cli(https_daemon, tmp_path / "home")
    url = f"https://{DOMAIN}:{caddy.https_port}"

    # Without Caddy's CA the certificate is refused: one clear line, exit 3.
    code, _, err = cli.main("whoami", "--url", url, "--token", "x", monkeypatch=monkeypatch)
    assert code == 3 and "CERTIFICATE_VERIFY_FAILED" in err and "Traceback" not in err

    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    root = caddy.home / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
    monkeypatch.setenv("SSL_CERT_FILE", str(root))
    code, out, err = cli.main(
        "login", "--url", url, "--email", EMAIL, "--password-stdin", monkeypatch=monkeypatch
    )
    assert code == 0, err
    assert f"logged in to {url}" in out
    code, out, err = cli.main("whoami", monkeypatch=monkeypatch)
    assert code == 0 and EMAIL in out, err
    code, out, err = cli.main("services", "ls", monkeypatch=monkeypatch)
    assert (code, err) == (0, "") and "no services yet" in out

    # A deploy over HTTPS: the directory uploaded through Caddy, its stages and log followed
    # over wss:// (no fall back to polling), to live on the process target (no engine here).
    app = tmp_path / "app"
    app.mkdir()
    (app / "app.py").write_text(APP)
    monkeypatch.chdir(app)
    code, out, err = cli.main(
        "deploy", "--name", "web", "--target", "process", "--runtime", "python",
        monkeypatch=monkeypatch,
    )  # fmt: skip
    assert code == 0, (out, err)
    assert "uploading " in out and "no event stream" not in out
    assert "[live 100%]" in out and "[health_checking " in out
