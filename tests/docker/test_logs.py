"""Logs: a deployment's log followed to its end, a service's output tailed and followed, and
a follow stream that ends cleanly (no task or thread left) when the client goes away."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from tests.docker.conftest import STATIC_APP, make_repo, wait_done

TICKER = (
    'i=0; while true; do i=$((i+1)); echo "tick $i"; echo "warn $i" >&2; sleep 0.2; done'
    ' & exec httpd -f -p "$PORT" -h /app'
)


async def test_deployment_log_follows_until_the_end(
    dclient: TestClient,  # type: ignore[type-arg]
    auth: dict[str, str],
    tmp_path: Path,
) -> None:
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", STATIC_APP)
    body = {"name": "web", "source": "local", "path": str(repo), "runtime": "static"}
    created = await (await dclient.post("/api/v1/deployments", json=body, headers=auth)).json()
    resp = await dclient.get(f"/api/v1/deployments/{created['id']}/logs?follow=true", headers=auth)
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in (await asyncio.wait_for(resp.text(), 120)).splitlines()]
    assert lines[-1] == {"status": "live", "end": True}
    messages = [line["message"] for line in lines[:-1]]
    assert any(m.startswith("==> building") for m in messages)
    assert any(m.startswith("==> live") for m in messages)
    seqs = [line["seq"] for line in lines[:-1]]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


async def test_service_logs_tail_and_follow(
    dclient: TestClient,  # type: ignore[type-arg]
    auth: dict[str, str],
    tmp_path: Path,
) -> None:
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", STATIC_APP)
    body = {"name": "ticker", "source": "local", "path": str(repo), "runtime": "static",
            "run_cmd": TICKER}  # fmt: skip
    created = await (await dclient.post("/api/v1/deployments", json=body, headers=auth)).json()
    live = await wait_done(dclient, auth, created["id"])
    assert live["status"] == "live", live
    url = f"/api/v1/services/{live['service_id']}/logs"
    await asyncio.sleep(1.5)

    tail = await (await dclient.get(f"{url}?tail=3", headers=auth)).json()
    assert len(tail["logs"]) == 3 and tail["has_more"] is True
    streams = {
        entry["stream"] for entry in (await (await dclient.get(url, headers=auth)).json())["logs"]
    }
    assert streams == {"stdout", "stderr"}
    entry = tail["logs"][-1]
    assert entry["timestamp"].endswith("Z") and entry["message"].split()[0] in ("tick", "warn")
    resp = await dclient.get(f"{url}?tail=abc", headers=auth)
    assert resp.status == 400 and (await resp.json())["error"]["details"]["field"] == "tail"
    resp = await dclient.get(f"{url}?since=yesterday", headers=auth)
    assert resp.status == 400

    # Follow: new lines arrive as NDJSON; SSE when asked for.
    resp = await dclient.get(f"{url}?follow=true&tail=0", headers=auth)
    first = json.loads(await asyncio.wait_for(resp.content.readline(), 10))
    assert first["message"].split()[0] in ("tick", "warn")
    resp.close()
    resp = await dclient.get(
        f"{url}?follow=true&tail=1", headers={**auth, "Accept": "text/event-stream"}
    )
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    event = await asyncio.wait_for(resp.content.readline(), 10)
    assert event.startswith(b"data: {")
    resp.close()


async def test_a_follow_stream_ends_when_the_client_goes_away(
    dclient: TestClient,  # type: ignore[type-arg]
    auth: dict[str, str],
    tmp_path: Path,
) -> None:
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", STATIC_APP)
    # A quiet app: the follow stream waits with nothing to send.
    body = {"name": "quiet", "source": "local", "path": str(repo), "runtime": "static"}
    created = await (await dclient.post("/api/v1/deployments", json=body, headers=auth)).json()
    live = await wait_done(dclient, auth, created["id"])
    url = f"/api/v1/services/{live['service_id']}/logs?follow=true&tail=0"
    await asyncio.sleep(0.5)
    tasks_before = {t for t in asyncio.all_tasks() if not t.done()}
    threads_before = threading.active_count()

    for _ in range(3):
        async with aiohttp.ClientSession() as session:
            resp = await session.get(str(dclient.make_url(url)), headers=auth)
            assert resp.status == 200
            await asyncio.sleep(0.3)
            resp.close()  # the client goes away mid-stream

    async def leftovers() -> list[Any]:
        return [t for t in asyncio.all_tasks() if not t.done() and t not in tasks_before
                and t is not asyncio.current_task()]  # fmt: skip

    for _ in range(50):
        if not await leftovers():
            break
        await asyncio.sleep(0.1)
    assert await leftovers() == []
    assert threading.active_count() <= threads_before
