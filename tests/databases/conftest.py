"""Managed databases against the real Docker engine and the engine images scripts/provision
builds (stand-ins tagged like the official ones)."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from dployr.app import create_app
from dployr.config import Config
from dployr.databases.containers import DatabaseContainers
from dployr.databases.engines import ENGINE, DatabaseSpec
from dployr.ids import new_id
from dployr.runtime.docker import DockerTarget
from dployr.runtime.ports import free_loopback_port
from tests.conftest import login, missing, register
from tests.docker.conftest import cleanup_agent, data_dir, deploy_config, docker_engine

__all__ = ["data_dir", "docker_engine"]  # fixtures of tests/docker, used here too

Client = TestClient  # type: ignore[type-arg]

IMAGES = {"postgres": "postgres:15", "redis": "redis:7", "mariadb": "mariadb:10.11"}


@pytest.fixture(scope="session")
def engine_images(docker_engine: None) -> None:
    for image in IMAGES.values():
        if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode:
            missing(f"{image} is missing", "scripts/provision builds it")


@dataclass
class Harness:
    agent_id: str
    target: DockerTarget
    dbs: DatabaseContainers
    data_dir: Path

    async def spec(self, engine: str, owner: str = "usr_a", **changes: object) -> DatabaseSpec:
        name = f"db-{secrets.token_hex(3)}"
        username, database = ENGINE[engine].names(name)
        fields: dict[str, object] = {
            "id": new_id("db"),
            "owner_id": f"{owner}-{self.agent_id[-8:]}",
            "name": name,
            "engine": engine,
            "image": IMAGES[engine],
            "username": username,
            "password": secrets.token_urlsafe(24),
            "database": database,
            "host_port": await asyncio.to_thread(free_loopback_port),
            "volume": f"dployr-db-{self.agent_id[-8:]}-{name}",
        }
        fields.update(changes)
        return DatabaseSpec(**fields)  # type: ignore[arg-type]

    async def docker(self, *args: str) -> tuple[int, str]:
        """A docker CLI command: its exit code and output (stdout and stderr)."""
        proc = await asyncio.create_subprocess_exec(
            "docker", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await proc.communicate()
        return proc.returncode or 0, out.decode().strip()

    async def client(
        self, image: str, network: str, *cmd: str, env: dict[str, str], limit: int = 30
    ) -> tuple[int, str]:
        """Run `cmd` in a throwaway container of `image` on `network` (at most `limit` s)."""
        envs = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
        return await self.docker(
            "run", "--rm", "--label", f"dployr.agent={self.agent_id}", "--network", network,
            *envs, "--entrypoint", "timeout", image, str(limit), *cmd,
        )  # fmt: skip


@pytest.fixture
async def harness(engine_images: None, tmp_path: Path) -> AsyncIterator[Harness]:
    data_dir = tmp_path / "data"
    agent_id = new_id("agt")
    await asyncio.to_thread(data_dir.mkdir)
    await asyncio.to_thread((data_dir / "agent_id").write_text, agent_id)
    target = DockerTarget(Config(), agent_id)
    try:
        yield Harness(agent_id, target, DatabaseContainers(target, agent_id), data_dir)
    finally:
        await target.close()
        await asyncio.to_thread(cleanup_agent, data_dir)


@dataclass
class Running:
    """A database that runs for a whole module (`running_engines`)."""

    spec: DatabaseSpec
    container: str


@pytest.fixture(scope="module")
def running_engines(
    engine_images: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Running]]:
    """One running postgres and one running redis, made at once and shared by a module's tests
    that only read from a running database (its dumps, and how they fail); removed by label at
    the module's end. A test that creates, stops or removes a database makes its own."""
    data_dir = tmp_path_factory.mktemp("engines") / "data"
    data_dir.mkdir()
    agent_id = new_id("agt")
    (data_dir / "agent_id").write_text(agent_id)
    try:
        yield asyncio.run(_start_engines(agent_id, data_dir, ("postgres", "redis")))
    finally:
        cleanup_agent(data_dir)


async def _start_engines(
    agent_id: str, data_dir: Path, engines: tuple[str, ...]
) -> dict[str, Running]:
    target = DockerTarget(Config(), agent_id)
    h = Harness(agent_id, target, DatabaseContainers(target, agent_id), data_dir)
    try:

        async def start(engine: str) -> Running:
            spec = await h.spec(engine)
            container = await h.dbs.create(spec)
            assert await h.dbs.wait_ready(container, spec, 300) is None
            return Running(spec, container)

        started = await asyncio.gather(*(start(engine) for engine in engines))
        return dict(zip(engines, started, strict=True))
    finally:
        await target.close()


# -- through the API (dployr.databases.manager, api/databases.py) -----------------------------


def db_config(data_dir: Path, **sections: Any) -> Config:
    """The watch that brings databases back (every metrics.interval) runs only when a test
    makes it (its job's next_run_time): a test that stops a container is not raced by it."""
    config = deploy_config(data_dir)
    config = dataclasses.replace(
        config,
        webhooks=dataclasses.replace(config.webhooks, allow_private=True, retry_schedule=[1, 1]),
        metrics=dataclasses.replace(config.metrics, interval=3600),
    )
    for name, values in sections.items():
        config = dataclasses.replace(
            config, **{name: dataclasses.replace(getattr(config, name), **values)}
        )
    return config


@pytest.fixture
async def dbclient(aiohttp_client: Any, engine_images: None, data_dir: Path) -> Client:
    return await aiohttp_client(create_app(db_config(data_dir)))


@pytest.fixture
async def auth(dbclient: Client) -> dict[str, str]:
    await register(dbclient)
    return {"Authorization": f"Bearer {(await login(dbclient))['access_token']}"}


async def create_database(client: Client, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    resp = await client.post("/api/v1/databases", json=body, headers=headers)
    assert resp.status == 202, await resp.text()
    return dict(await resp.json())


async def wait_status(
    client: Client,
    headers: dict[str, str],
    database_id: str,
    wanted: tuple[str, ...] = ("running", "failed"),
    limit: float = 300,
) -> dict[str, Any]:
    deadline = time.monotonic() + limit
    while True:
        resp = await client.get(f"/api/v1/databases/{database_id}", headers=headers)
        body = dict(await resp.json())
        if body.get("status") in wanted:
            return body
        assert time.monotonic() < deadline, f"database {database_id} stayed {body}"
        await asyncio.sleep(0.3)


async def running_database(
    client: Client, headers: dict[str, str], **body: Any
) -> tuple[dict[str, Any], str]:
    """A database made through the API, running: (its object, its password)."""
    created = await create_database(client, headers, **body)
    found = await wait_status(client, headers, created["id"])
    assert found["status"] == "running", found
    return found, created["password"]


async def wait_backup(
    client: Client, headers: dict[str, str], database_id: str, backup_id: str, limit: float = 300
) -> dict[str, Any]:
    deadline = time.monotonic() + limit
    while True:
        resp = await client.get(f"/api/v1/databases/{database_id}/backups", headers=headers)
        found = [b for b in (await resp.json())["items"] if b["id"] == backup_id]
        if found and found[0]["status"] != "running":
            return dict(found[0])
        assert time.monotonic() < deadline, f"backup {backup_id} did not end: {found}"
        await asyncio.sleep(0.3)


async def database_container(data_dir: Path, database_id: str) -> str | None:
    """The database's container, found by its labels (None: there is none)."""
    return await asyncio.to_thread(_database_container, data_dir, database_id)


def _database_container(data_dir: Path, database_id: str) -> str | None:
    agent = (data_dir / "agent_id").read_text().strip()
    found = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=dployr.agent={agent}",
         "--filter", f"label=dployr.database={database_id}"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return found[0] if found else None


async def volume_exists(name: str) -> bool:
    return await docker("volume", "inspect", name) == 0


async def docker(*args: str) -> int:
    """A docker CLI command (its output dropped): its exit code."""
    proc = await asyncio.create_subprocess_exec(
        "docker", *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    return await proc.wait()


async def run_in(container: str, env: dict[str, str], *cmd: str) -> str:
    """A command in the database's container (its own client), its output; fails on exit != 0."""
    args = ["docker", "exec"]
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    proc = await asyncio.create_subprocess_exec(
        *args, container, *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    text = out.decode("utf-8", "replace")
    assert proc.returncode == 0, f"{cmd}: {text}"
    return text


def sql_client(record: dict[str, Any], password: str) -> tuple[dict[str, str], list[str]]:
    """(env, argv) of the engine's own client, over TCP inside its container."""
    if record["engine"] == "postgres":
        return {"PGPASSWORD": password}, [
            "psql", "-h", "127.0.0.1", "-U", record["username"], "-d", record["database"],
            "-tA", "-v", "ON_ERROR_STOP=1", "-c",
        ]  # fmt: skip
    if record["engine"] == "mariadb":
        return {"MYSQL_PWD": password}, [
            "mariadb", "-h", "127.0.0.1", "-u", record["username"], record["database"], "-N", "-e",
        ]  # fmt: skip
    return {"REDISCLI_AUTH": password}, ["redis-cli", "-h", "127.0.0.1"]
