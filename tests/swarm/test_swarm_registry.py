"""`[swarm] registry`: each release is pushed to a registry (with the login of a `registry`
credential) and the Swarm service names the registry's image, so that every node pulls the
same one; deleting the service deletes its images there too. A real registry: Debian's
docker-registry on a loopback port, with htpasswd auth."""

from __future__ import annotations

import asyncio
import base64
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from dployr.app import create_app
from tests.conftest import login, make_config, missing, register
from tests.docker.conftest import deploy_config, wait_done
from tests.swarm.conftest import docker
from tests.swarm.test_swarm_target import answers, image_body

USER, PASSWORD = "dployr", "registry-pass-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def registry_get(registry: str, path: str, method: str = "GET") -> int:
    request = urllib.request.Request(f"http://{registry}{path}", method=method)
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    request.add_header("Accept", "application/vnd.docker.distribution.manifest.v2+json")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
    except urllib.error.URLError:
        return 0  # not listening yet


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("docker-registry")
    if binary is None:
        missing("docker-registry is not installed", "scripts/provision installs it")
    assert binary is not None
    root = tmp_path / "registry"
    root.mkdir()
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    (root / "htpasswd").write_text(f"{USER}:{hashed}\n")
    port = free_port()
    (root / "config.yml").write_text(
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
        f"auth:\n  htpasswd:\n    realm: test\n    path: {root / 'htpasswd'}\n"
    )
    with (root / "log").open("wb") as log:
        process = subprocess.Popen(
            [binary, "serve", str(root / "config.yml")], stdout=log, stderr=subprocess.STDOUT
        )
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while registry_get(address, "/v2/") != 200:
            assert time.monotonic() < deadline, (root / "log").read_text()
            time.sleep(0.1)
        yield address
    finally:
        process.kill()
        process.wait(10)


@pytest.mark.timeout(300)
async def test_releases_go_through_the_registry_and_leave_it_with_the_service(
    swarm: None, docker_engine: None, aiohttp_client: Any, registry: str, data_dir: Path
) -> None:
    # The credential first (the config names its id), through the API of a first daemon.
    client = await aiohttp_client(create_app(deploy_config(data_dir)))
    await register(client)
    auth = {"Authorization": f"Bearer {(await login(client))['access_token']}"}
    resp = await client.post(
        "/api/v1/credentials",
        json={"type": "registry", "name": "registry",
              "data": {"username": USER, "password": PASSWORD}},
        headers=auth,
    )  # fmt: skip
    assert resp.status == 201, await resp.text()
    credential_id = (await resp.json())["id"]
    await client.close()

    config = make_config(
        data_dir,
        runtime=dict(deploy_config(data_dir).runtime.__dict__),
        swarm={"registry": registry, "registry_credential_id": credential_id},
    )
    client = await aiohttp_client(create_app(config))
    auth = {"Authorization": f"Bearer {(await login(client))['access_token']}"}
    resp = await client.post("/api/v1/deployments", json=image_body("reg", "one"), headers=auth)
    assert resp.status == 202, await resp.text()
    live = await wait_done(client, auth, (await resp.json())["id"], limit=240)
    assert live["status"] == "live", live["error"]
    service_id = live["service_id"]
    assert live["artifact"] == f"{registry}/dployr/{service_id}:1"
    name = "dployr-" + service_id.replace("_", "-")
    image = await asyncio.to_thread(
        docker, "service", "inspect", name, "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}"
    )
    assert image.startswith(f"{registry}/dployr/{service_id}:1"), image
    manifest = f"/v2/dployr/{service_id}/manifests/1"
    assert await asyncio.to_thread(registry_get, registry, manifest, "HEAD") == 200
    said = await asyncio.to_thread(answers, service_id)
    assert len(said) == 1 and said[0].startswith("one "), said
    log = await (await client.get(f"/api/v1/deployments/{live['id']}/logs", headers=auth)).text()
    assert PASSWORD not in log

    resp = await client.delete(f"/api/v1/services/{service_id}", headers=auth)
    assert resp.status == 204, await resp.text()
    assert await asyncio.to_thread(registry_get, registry, manifest, "HEAD") == 404
