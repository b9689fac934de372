"""A swarm service reaches its owner's managed database by name on the owner's overlay (SPEC
§15): the database joins it, and a link sets the URL of that name in the tasks' env."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import pytest

from dployr.app import create_app
from tests.conftest import login, register
from tests.databases.conftest import db_config, engine_images, running_database
from tests.swarm.conftest import docker
from tests.swarm.test_swarm_target import deploy, image_body

__all__ = ["engine_images"]


def running_task(service_id: str) -> str:
    name = "dployr-" + service_id.replace("_", "-")
    listed = docker(
        "service", "ps", name, "--no-trunc", "--filter", "desired-state=running",
        "--format", "{{.ID}} {{.CurrentState}}",
    ).splitlines()  # fmt: skip
    task = next(line.split()[0] for line in listed if line.split()[1] == "Running")
    return docker("ps", "-q", "--filter", f"label=com.docker.swarm.task.id={task}")


@pytest.mark.timeout(300)
async def test_a_swarm_task_reaches_its_owners_database_by_name(
    swarm: None, engine_images: None, aiohttp_client: Any, data_dir: Path
) -> None:
    # An overlay of another name than the owner's network: the database joins it.
    config = db_config(data_dir, swarm={"network": f"dpdb{secrets.token_hex(3)}"})
    client = await aiohttp_client(create_app(config))
    await register(client)
    auth = {"Authorization": f"Bearer {(await login(client))['access_token']}"}
    database, password = await running_database(client, auth, name="cache", engine="redis")
    live = await deploy(client, auth, image_body("withdb", "one"))
    assert live["status"] == "live", live["error"]
    resp = await client.post(
        f"/api/v1/databases/{database['id']}/links?apply=true",
        json={"service_id": live["service_id"]},
        headers=auth,
    )
    assert resp.status == 201, await resp.text()
    # The restart that applied it was a rolling update: the task has the URL of the name.
    container = await asyncio.to_thread(running_task, live["service_id"])
    env = await asyncio.to_thread(docker, "exec", container, "/.dployr/busybox", "env")
    assert f"{password}@cache:6379" in env
    ask = 'printf "AUTH %s\\r\\nPING\\r\\n" "$0" | /.dployr/busybox nc -w 2 cache 6379'
    said = await asyncio.to_thread(
        docker, "exec", container, "/.dployr/busybox", "sh", "-c", ask, password
    )
    assert "+PONG" in said, said
