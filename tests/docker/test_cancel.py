"""A cancel while the engine is still creating or starting a container leaves none behind."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess

from dployr.ids import new_id
from dployr.runtime.docker import DockerRuntime
from dployr.runtime.protocol import InstanceSpec


def containers_of(agent_id: str) -> list[str]:
    args = ["docker", "ps", "-aq", "--filter", f"label=dployr.agent={agent_id}"]
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout.split()


def remove_all(agent_id: str) -> None:
    if found := containers_of(agent_id):
        subprocess.run(["docker", "rm", "-f", *found], capture_output=True, check=False)


async def test_a_cancel_during_start_removes_the_container_being_made(docker_engine):
    agent_id = new_id("agt")
    runtime = await DockerRuntime.open("unix:///var/run/docker.sock", agent_id)
    spec = InstanceSpec(
        "svc_cancel",
        "cancel",
        "dep_cancel",
        1,
        "busybox:stable",
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
