"""Deploys against the real Docker engine: apps in real git repos, built FROM busybox."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from dployr.app import create_app
from tests.conftest import login, make_config, missing, register

TERMINAL = ("live", "failed", "cancelled")


def engine_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def docker_engine() -> None:
    if not engine_answers():
        missing("no Docker engine answers", "scripts/provision starts one")
    if subprocess.run(
        ["docker", "image", "inspect", "busybox:stable"], capture_output=True
    ).returncode:
        pytest.fail("busybox:stable is missing: run scripts/provision")


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}  # fmt: skip
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def make_repo(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    commit(path, files, "first")
    return path


def commit(repo: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def cleanup_agent(data_dir: Path) -> None:
    """Remove every container, image, volume and network this test's agent made (by label)."""
    agent_file = data_dir / "agent_id"
    if not agent_file.exists():
        return
    label = f"label=dployr.agent={agent_file.read_text().strip()}"
    services = subprocess.run(  # the swarm target's (an engine not in a swarm: none)
        ["docker", "service", "ls", "-q", "--filter", label], capture_output=True, text=True
    ).stdout.split()
    if services:
        subprocess.run(["docker", "service", "rm", *services], capture_output=True)
    ids = subprocess.run(
        ["docker", "ps", "-aq", "--filter", label], capture_output=True, text=True
    ).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-fv", *ids], capture_output=True)
    images = subprocess.run(
        ["docker", "images", "-q", "--filter", label], capture_output=True, text=True
    ).stdout.split()
    if images:
        subprocess.run(["docker", "rmi", "-f", *set(images)], capture_output=True)
    for kind in ("volume", "network"):  # volumes (SPEC §14) and the owners' networks
        names = subprocess.run(
            ["docker", kind, "ls", "-q", "--filter", label], capture_output=True, text=True
        ).stdout.split()
        if names:
            subprocess.run(["docker", kind, "rm", *names], capture_output=True)


def agent_containers(data_dir: Path, all_: bool = True) -> list[str]:
    agent = (data_dir / "agent_id").read_text().strip()
    args = ["docker", "ps", "-q", "--filter", f"label=dployr.agent={agent}"]
    return subprocess.run(
        args + (["-a"] if all_ else []), capture_output=True, text=True
    ).stdout.split()


def agent_images(data_dir: Path) -> list[str]:
    agent = (data_dir / "agent_id").read_text().strip()
    args = [
        "docker",
        "images",
        "--format",
        "{{.Repository}}:{{.Tag}}",
        "--filter",
        f"label=dployr.agent={agent}",
    ]
    return subprocess.run(args, capture_output=True, text=True).stdout.split()


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "data"
    yield path
    cleanup_agent(path)


def deploy_config(data_dir: Path, **runtime: Any) -> Any:
    return make_config(
        data_dir,
        runtime={"allow_local_sources": True, "allow_private_remotes": True,
                 "drain_seconds": 0.2, "health_timeout": 20, **runtime},
    )  # fmt: skip


@pytest.fixture
async def dclient(aiohttp_client: Any, docker_engine: None, data_dir: Path) -> TestClient:  # type: ignore[type-arg]
    return await aiohttp_client(create_app(deploy_config(data_dir)))


@pytest.fixture
async def auth(dclient: TestClient) -> dict[str, str]:  # type: ignore[type-arg]
    await register(dclient)
    pair = await login(dclient)
    return {"Authorization": f"Bearer {pair['access_token']}"}


async def wait_done(
    client: TestClient, headers: dict[str, str], deployment_id: str, limit: float = 180
) -> dict[str, Any]:  # type: ignore[type-arg]
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        resp = await client.get(f"/api/v1/deployments/{deployment_id}", headers=headers)
        body = await resp.json()
        if body["status"] in TERMINAL:
            return dict(body)
        await asyncio.sleep(0.2)
    raise AssertionError(f"deployment {deployment_id} did not finish: {body}")


async def fetch_text(port: int, path: str = "/") -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}{path}") as r,
    ):
        return r.status, await r.text()


STATIC_APP = {"index.html": "hello v1\n"}
