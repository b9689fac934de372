"""A cancel while the engine is still creating or starting a container leaves none behind."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess

from dployr.config import Config
from dployr.ids import new_id
from dployr.pipeline import attempt
from dployr.runtime.docker import DockerTarget
from dployr.runtime.protocol import InstanceSpec, RuntimeFailure
from dployr.store import deployments as store
from tests.docker.conftest import agent_containers, wait_done


def containers_of(agent_id: str) -> list[str]:
    args = ["docker", "ps", "-aq", "--filter", f"label=dployr.agent={agent_id}"]
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout.split()


def remove_all(agent_id: str) -> None:
    if found := containers_of(agent_id):
        subprocess.run(["docker", "rm", "-fv", *found], capture_output=True, check=False)


async def test_a_cancel_during_start_removes_the_container_being_made(docker_engine):
    agent_id = new_id("agt")
    runtime = DockerTarget(Config(), agent_id)
    spec = InstanceSpec(
        "svc_cancel",
        "cancel",
        "dep_cancel",
        1,
        "busybox:stable",
        "image",
        8080,
        None,
        {},
        run_cmd="sleep 600",
    )
    try:
        # Cancel after 0, 25, 50 … ms: before the create call, while the engine creates the
        # container, while it starts it, and after it returned.
        for delay_ms in range(0, 400, 25):
            task = asyncio.create_task(runtime.start(spec))
            await asyncio.sleep(delay_ms / 1000)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                instance = await task
                await runtime.stop(instance.ref, grace=0)  # it won the race: ours to remove
            assert await asyncio.to_thread(containers_of, agent_id) == [], delay_ms
    finally:
        await asyncio.to_thread(remove_all, agent_id)
        await runtime.close()


WORKER = {"name": "w", "source": "image", "image": "busybox:stable", "run_cmd": "sleep 600",
          "port": None, "health_check": {"timeout": 1}}  # fmt: skip


async def test_a_cancel_while_going_live_still_retires_the_old_release(
    dclient, auth, data_dir, monkeypatch
):
    """A cancel that lands between the switch and the commit that says so: the release goes
    live (the DELETE says so with a 409) and the release it replaced stops, as always."""
    first = await (await dclient.post("/api/v1/deployments", json=WORKER, headers=auth)).json()
    assert (await wait_done(dclient, auth, first["id"]))["status"] == "live"
    real = store.make_live

    async def slow_make_live(*args, **kwargs):
        await asyncio.sleep(1.0)  # a slow commit: the cancel lands while it runs
        return await real(*args, **kwargs)

    monkeypatch.setattr(attempt.deployments, "make_live", slow_make_live)
    second = await (await dclient.post("/api/v1/deployments", json=WORKER, headers=auth)).json()
    while (await (await dclient.get(f"/api/v1/deployments/{second['id']}", headers=auth)).json())[
        "status"
    ] != "switching":
        await asyncio.sleep(0.05)
    resp = await dclient.delete(f"/api/v1/deployments/{second['id']}", headers=auth)
    assert resp.status == 409, await resp.text()
    assert (await resp.json())["error"]["code"] == "invalid_state"
    assert (await wait_done(dclient, auth, second["id"]))["status"] == "live"
    old = await (await dclient.get(f"/api/v1/deployments/{first['id']}", headers=auth)).json()
    assert old["status"] == "superseded"
    assert len(await asyncio.to_thread(agent_containers, data_dir, False)) == 1


async def test_a_cleanup_the_engine_refuses_still_ends_the_deployment(
    dclient, auth, data_dir, monkeypatch
):
    """The engine fails while a failed attempt removes its instance: the deployment still
    ends `failed` (with a line saying what is left), never stuck in a running stage."""
    real_stop = DockerTarget.stop

    async def refusing_stop(self, ref, grace=10):
        raise RuntimeFailure("the Docker engine is not reachable: (refused in this test)")

    silent = {**WORKER, "name": "h", "port": 8080, "health_check": {"path": None, "timeout": 2}}
    monkeypatch.setattr(DockerTarget, "stop", refusing_stop)
    created = await (await dclient.post("/api/v1/deployments", json=silent, headers=auth)).json()
    done = await wait_done(dclient, auth, created["id"], limit=60)
    monkeypatch.setattr(DockerTarget, "stop", real_stop)
    assert done["status"] == "failed", done
    assert "health check failed" in done["error"]
    resp = await dclient.get(f"/api/v1/deployments/{created['id']}/logs", headers=auth)
    lines = [line["message"] for line in (await resp.json())["logs"]]
    assert any("could not remove the instance" in line for line in lines), lines
