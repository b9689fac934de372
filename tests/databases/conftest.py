"""Managed databases against the real Docker engine and the engine images scripts/provision
builds (stand-ins tagged like the official ones)."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dployr.config import Config
from dployr.databases.containers import DatabaseContainers
from dployr.databases.engines import ENGINE, DatabaseSpec
from dployr.ids import new_id
from dployr.runtime.docker import DockerTarget
from dployr.runtime.ports import free_loopback_port
from tests.docker.conftest import cleanup_agent, docker_engine  # noqa: F401 (a fixture)

IMAGES = {"postgres": "postgres:15", "redis": "redis:7", "mariadb": "mariadb:10.11"}


@pytest.fixture(scope="session")
def engine_images(docker_engine: None) -> None:  # noqa: F811
    for image in IMAGES.values():
        if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode:
            if os.environ.get("CI"):
                pytest.fail(f"{image} is missing: run scripts/provision")
            pytest.skip(f"{image} is missing (run scripts/provision)")


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
