"""A real container that exits in a loop raises service.crashed once per episode, through the
scheduler's watch job, and a new episode after it ran healthy again."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from dployr.app import create_app
from dployr.keys import DB
from dployr.store.events import events_after
from tests.conftest import login, register
from tests.docker.conftest import STATIC_APP, deploy_config, make_repo
from tests.docker.test_pipeline import deploy, static_body

# Each run of the container counts itself in its own writable layer (kept across restarts):
# run 1 goes live and exits after 8 s; runs 2-3 exit at once (episode 1); run 4 runs 12 s
# (healthy again: over twice alerts.healthy_seconds) then exits; runs 5-6 exit at once
# (episode 2); run 7 on stays up.
LOOP = (
    "n=$(( $(cat /app/.runs 2>/dev/null || echo 0) + 1 )); echo $n > /app/.runs; echo run $n; "
    "case $n in 1) sleep 8; exit 3;; 2|3|5|6) exit 3;; 4) sleep 12; exit 3;; esac; "
    "exec sleep 600"
)


async def crashed_events(client: TestClient) -> list[Any]:  # type: ignore[type-arg]
    logged = await events_after(client.app[DB], 0, None, 1000)
    return [e for e in logged if e.type == "service.crashed"]


async def test_a_crash_loop_is_reported_once_per_episode(
    aiohttp_client: Any, docker_engine: None, data_dir: Path, tmp_path: Path
) -> None:
    config = deploy_config(data_dir)
    config = dataclasses.replace(
        config,
        metrics=dataclasses.replace(config.metrics, interval=1),  # the watch job, each second
        alerts=dataclasses.replace(config.alerts, healthy_seconds=5),
    )
    client = await aiohttp_client(create_app(config))
    await register(client)
    auth = {"Authorization": f"Bearer {(await login(client))['access_token']}"}
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", STATIC_APP)
    settle = {"path": "/", "timeout": 2}  # a worker: live once it stayed up 2 s
    body = static_body(repo, name="looper", port=None, health_check=settle, run_cmd=LOOP)
    live = await deploy(client, auth, body)
    assert live["status"] == "live", live

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(await crashed_events(client)) < 2:
        await asyncio.sleep(0.5)
    first, second = await crashed_events(client)
    for event in (first, second):
        assert event.owner_id is not None
        assert event.data["service_id"] == live["service_id"]
        assert event.data["service_name"] == "looper"
        assert event.data["deployment_id"] == live["id"]
    assert 1 <= first.data["restarts"] < second.data["restarts"]

    # Run 7 stays up: many more watch rounds, no third report.
    while time.monotonic() < deadline:
        status = await (
            await client.get(f"/api/v1/services/{live['service_id']}/status", headers=auth)
        ).json()
        if status["status"] == "running" and status["restarts"] >= 6:
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(4)
    reported = [(e.data["status"], e.data["restarts"]) for e in await crashed_events(client)]
    assert len(reported) == 2, reported
