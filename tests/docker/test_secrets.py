"""A secret env value and a credential token never show: not in an API answer, a log line, an
event, the daemon's log, or the database file (other than as ciphertext)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import sqlite3
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from tests.docker.conftest import STATIC_APP, fetch_text, make_repo, wait_done


async def test_sentinels_never_leak(
    dclient: TestClient,  # type: ignore[type-arg]
    auth: dict[str, str],
    tmp_path: Path,
    data_dir: Path,
    git_server: tuple[Path, int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    env_secret = "SENTINEL_ENV_" + secrets.token_hex(8)
    token_secret = "SENTINEL_TOKEN_" + secrets.token_hex(8)
    base, port = git_server
    await asyncio.to_thread(make_repo, base / "app", STATIC_APP)
    seen: list[str] = []

    async def call(method: str, path: str, **kwargs: object) -> dict[str, object]:
        resp = await dclient.request(method, path, headers=auth, **kwargs)  # type: ignore[arg-type]
        seen.append(await resp.text())
        assert resp.status < 300, seen[-1]
        return dict(await resp.json())

    credential = await call(
        "POST", "/api/v1/credentials",
        json={"type": "token", "name": "ci", "data": {"token": token_secret}},
    )  # fmt: skip
    body = {
        "name": "secretive",
        "source": "remote",
        "remote": f"git://127.0.0.1:{port}/app",
        "branch": "main",
        "credential_id": credential["id"],
        "runtime": "static",
        "build_cmd": "env; echo build done",
        "run_cmd": 'env; exec httpd -f -p "$PORT" -h /app',
        "health_check": {"path": "/", "timeout": 20},
    }
    first = await call("POST", "/api/v1/deployments", json=body)
    live = await wait_done(dclient, auth, str(first["id"]))
    assert live["status"] == "live", live
    sid = live["service_id"]
    await call(
        "POST",
        f"/api/v1/services/{sid}/env",
        json={"key": "API_KEY", "value": env_secret, "secret": True},
    )
    # A successful deploy with the secret, then one that prints its env and dies.
    ok = await call("POST", "/api/v1/deployments", json=body)
    ok = await wait_done(dclient, auth, str(ok["id"]))
    assert ok["status"] == "live", ok
    assert ok["env"]["API_KEY"] == "********"
    service = await call("GET", f"/api/v1/services/{sid}")
    assert await fetch_text(int(service["host_port"])) == (200, "hello v1\n")  # type: ignore[call-overload]
    broken = await call("POST", "/api/v1/deployments", json={**body, "run_cmd": "env; exit 1"})
    broken = await wait_done(dclient, auth, str(broken["id"]))
    assert broken["status"] == "failed"

    for deployment in (first, ok, broken):
        await call("GET", f"/api/v1/deployments/{deployment['id']}")
        logs = await call("GET", f"/api/v1/deployments/{deployment['id']}/logs")
        seen.append(str(logs))
    service_logs = await call("GET", f"/api/v1/services/{sid}/logs?tail=500")
    assert "API_KEY=********" in str(service_logs), service_logs  # the app printed it, masked
    broken_log = await call("GET", f"/api/v1/deployments/{broken['id']}/logs")
    assert "API_KEY=********" in str(broken_log)
    await call("GET", f"/api/v1/services/{sid}/env")
    await call("GET", "/api/v1/credentials")
    await call("GET", "/api/v1/deployments")
    await call("GET", "/api/v1/services")

    def database_bytes() -> bytes:
        return b"".join(p.read_bytes() for p in data_dir.glob("dployr.db*"))

    stored = await asyncio.to_thread(database_bytes)

    def event_data() -> str:
        with sqlite3.connect(data_dir / "dployr.db") as conn:
            rows = conn.execute("SELECT type, data FROM events").fetchall()
        assert any(t == "deployment.failed" for t, _ in rows)
        return "\n".join(d for _, d in rows)

    events = await asyncio.to_thread(event_data)
    for sentinel in (env_secret, token_secret):
        for text in seen:
            assert sentinel not in text
        assert sentinel not in caplog.text
        assert sentinel.encode() not in stored
        assert sentinel not in events
