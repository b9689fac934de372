"""The swarm proxy on a real one-node Swarm: Caddy as a Swarm service on an overlay, reaching
the tasks of a dnsrr service by `tasks.<name>`, driven through its admin socket."""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dployr.config import Config
from dployr.errors import ProxyError
from dployr.proxy import swarm as swarm_module
from dployr.proxy.protocol import Route
from dployr.proxy.swarm import SwarmProxy
from dployr.runtime.docker import DockerTarget
from tests.conftest import make_config
from tests.proxy.conftest import get, proxy_port
from tests.swarm.conftest import Stage, docker

pytestmark = pytest.mark.integration
HTTPD = "mkdir -p /www && hostname > /www/index.html && httpd -f -p 8080 -h /www"


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A short path: the admin socket's path must fit in 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="dps-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def engine(stage: Stage, data_dir: Path) -> AsyncIterator[tuple[Config, DockerTarget]]:
    """A config with free proxy ports, and the docker target the proxy drives the engine with."""
    http_port, https_port = await asyncio.to_thread(lambda: (proxy_port(), proxy_port()))
    config = make_config(data_dir, proxy={"http_port": http_port, "https_port": https_port})
    target = DockerTarget(config, stage.agent)
    yield config, target
    await target.close()


def proxy_tasks(service: str) -> set[str]:
    return set(docker("service", "ps", "-q", "--filter", "desired-state=running", service).split())


def answers(port: int, host: str, wanted: int, timeout: float = 60) -> set[str]:
    """Who answers `Host: host` on 127.0.0.1:port, until `wanted` different tasks did (bounded
    in count and time)."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    for _ in range(400):
        if len(seen) >= wanted or time.monotonic() > deadline:
            break
        try:
            status, body = get(port, host, timeout=5)
        except OSError:  # the task is starting: nothing listens on the port yet
            status, body = 0, ""
        if status == 200:
            seen.add(body.strip())
        else:
            time.sleep(0.2)
    return seen


async def test_routes_to_every_task_and_changes_without_a_restart(
    stage: Stage, engine: tuple[Config, DockerTarget]
) -> None:
    config, target = engine
    http_port = config.proxy.http_port
    net = await asyncio.to_thread(stage.network, f"dployr-t-{stage.test}")
    app = await asyncio.to_thread(
        stage.service, f"dployr-t-{stage.test}-app", "--network", net, "--endpoint-mode",
        "dnsrr", "--replicas", "2", "busybox:stable", "sh", "-c", HTTPD,
    )  # fmt: skip
    proxy = SwarmProxy(config, stage.agent, target, service=f"dployr-t-{stage.test}-proxy")
    await proxy.ensure({net})
    upstreams = {"svc_a": [f"tasks.{app}:8080"]}
    routes = [Route("rte_a", "app.localhost", "/", "off", "svc_a")]
    await proxy.apply(routes, upstreams)
    assert len(await asyncio.to_thread(answers, http_port, "app.localhost", 2)) == 2
    assert await proxy.problem() is None

    # A change of routes is a load through the socket: the same task serves it.
    tasks = await asyncio.to_thread(proxy_tasks, proxy.service)
    routes.append(Route("rte_b", "b.localhost", "/", "off", "svc_a"))
    await proxy.apply(routes, upstreams)
    assert await asyncio.to_thread(answers, http_port, "b.localhost", 1, 10)
    await proxy.ensure({net})  # nothing differs: nothing to do
    assert await asyncio.to_thread(proxy_tasks, proxy.service) == tasks

    # Another owner's overlay: the task is replaced and starts from the persisted Caddyfile.
    other = await asyncio.to_thread(stage.network, f"dployr-t-{stage.test}-2")
    await proxy.ensure({net, other})
    assert await asyncio.to_thread(proxy_tasks, proxy.service) != tasks
    assert await asyncio.to_thread(answers, http_port, "b.localhost", 1)

    await proxy.remove()
    assert await target.get_json(f"/services/{proxy.service}") is None


async def test_a_port_that_is_taken_is_swarms_own_reason_soon(
    stage: Stage, engine: tuple[Config, DockerTarget], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task that cannot start (the host port is another program's) is a 502 with Swarm's
    words once Swarm retried, not a wait to the deadline under the router's lock (made
    longer than the test's own timeout here)."""
    monkeypatch.setattr(swarm_module, "START_TIMEOUT", 3600.0)
    config, target = engine
    net = await asyncio.to_thread(stage.network, f"dployr-t-{stage.test}")
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    await asyncio.to_thread(squatter.bind, ("0.0.0.0", config.proxy.http_port))  # noqa: S104
    squatter.listen()
    try:
        proxy = SwarmProxy(config, stage.agent, target, service=f"dployr-t-{stage.test}-proxy")
        with pytest.raises(ProxyError) as caught:
            await proxy.ensure({net})
        assert "address already in use" in caught.value.message, caught.value.message
    finally:
        squatter.close()
