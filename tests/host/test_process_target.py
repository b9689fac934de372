"""The process target on this host, for real: supervised children, restarts, logs, stop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import psutil
import pytest

from dployr.runtime.process import MARKER, ProcessTarget, kill_marked
from dployr.runtime.protocol import BuildRequest, InstanceSpec, LogLine
from tests.conftest import make_config
from tests.host.conftest import Collected

SERVER = """\
import http.server, os, sys
print("serving v1", flush=True)
print("a note on stderr", file=sys.stderr, flush=True)
http.server.HTTPServer(
    ("127.0.0.1", int(os.environ["PORT"])), http.server.SimpleHTTPRequestHandler
).serve_forever()
"""


@pytest.fixture
async def target(tmp_path: Path) -> AsyncIterator[ProcessTarget]:
    made = ProcessTarget(make_config(tmp_path / "data"), "agt_test")
    try:
        yield made
    finally:
        await made.close()


async def _release(
    target: ProcessTarget,
    source_tar: Callable[[dict[str, str]], Path],
    files: dict[str, str],
    runtime: str = "python",
) -> str:
    source = await asyncio.to_thread(source_tar, files)
    request = BuildRequest("svc_p", "web", "dep_1", 1, runtime, None, None, None, source, 120.0)
    return await target.build(request, Collected())


def _spec(artifact: str, port: int | None = 8000, run_cmd: str | None = None) -> InstanceSpec:
    return InstanceSpec(
        "svc_p", "web", "dep_1", 1, artifact, "python", port, None, {"GREETING": "hi"},
        run_cmd=run_cmd,
    )  # fmt: skip


def _group_of(ref: str) -> list[psutil.Process]:
    """Every process of the instance (the keeper, sh, the app), by the marker in its env."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get(MARKER) == ref:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


async def _get(port: int) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            try:
                async with session.get(f"http://127.0.0.1:{port}/app.py") as resp:
                    return resp.status, await resp.text()
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
    raise AssertionError(f"nothing answered on {port}")


async def test_an_app_runs_serves_logs_and_stops(
    target: ProcessTarget, source_tar: Callable[[dict[str, str]], Path]
) -> None:
    artifact = await _release(target, source_tar, {"app.py": SERVER})
    instance = await target.start(_spec(artifact))
    assert instance.host_port is not None
    assert await _get(instance.host_port) == (200, SERVER)
    status = await target.status(instance.ref)
    assert (status.status, status.restarts) == ("running", 0)
    lines: list[LogLine] = []
    async with asyncio.timeout(30):
        while not any("GET /app.py" in line.message for line in lines):
            lines = [
                line
                async for line in target.logs(instance.ref, tail=None, since=None, follow=False)
            ]
            await asyncio.sleep(0.1)
    assert ("stdout", "serving v1") in [(line.stream, line.message) for line in lines]
    assert ("stderr", "a note on stderr") in [(line.stream, line.message) for line in lines]
    assert [line.message for line in lines][-1:] == [
        m for m in (await target.recent_output(instance.ref, 1)).splitlines()
    ]
    assert [i.ref for i in await target.instances()] == [instance.ref]
    group = await asyncio.to_thread(_group_of, instance.ref)
    assert len(group) >= 2  # the keeper and the app (and sh when it did not exec)
    await target.stop(instance.ref, grace=5)
    assert await asyncio.to_thread(_group_of, instance.ref) == []
    assert (await target.status(instance.ref)).status == "unknown"
    assert await target.instances() == []


async def test_a_crashing_app_restarts_with_backoff_and_counts(
    target: ProcessTarget, source_tar: Callable[[dict[str, str]], Path]
) -> None:
    artifact = await _release(target, source_tar, {"app.py": "print('up'); raise SystemExit(3)\n"})
    instance = await target.start(_spec(artifact, port=None))
    assert instance.host_port is None
    async with asyncio.timeout(30):
        while (status := await target.status(instance.ref)).restarts < 2:
            await asyncio.sleep(0.1)
    assert status.health == "exit code 3" or status.status == "running"
    messages = [
        line.message
        async for line in target.logs(instance.ref, tail=None, since=None, follow=False)
    ]
    assert messages.count("up") >= 2
    assert "dployr: the app exited (exit code 3); restarting" in messages
    await target.stop(instance.ref, grace=1)


async def test_a_follower_gets_the_old_lines_then_the_new_ones(
    target: ProcessTarget, source_tar: Callable[[dict[str, str]], Path]
) -> None:
    ticker = (
        "import time\nfor i in range(10**6):\n    print('tick', i, flush=True)\n"
        "    time.sleep(0.2)\n"
    )
    artifact = await _release(target, source_tar, {"app.py": ticker})
    instance = await target.start(_spec(artifact, port=None))
    async with asyncio.timeout(30):
        while len(await target.recent_output(instance.ref)) == 0:
            await asyncio.sleep(0.1)
    got: list[str] = []
    async with asyncio.timeout(30):
        async for line in target.logs(instance.ref, tail=1, since=None, follow=True):
            got.append(line.message)
            if len(got) == 5:
                break
    numbers = [int(m.split()[1]) for m in got]
    assert numbers == list(range(numbers[0], numbers[0] + 5)), got  # none missed, none twice
    await target.stop(instance.ref, grace=1)


async def test_an_app_that_ignores_sigterm_is_killed_after_the_grace(
    target: ProcessTarget, source_tar: Callable[[dict[str, str]], Path]
) -> None:
    stubborn = (
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('x', flush=True)\ntime.sleep(600)\n"
    )
    artifact = await _release(target, source_tar, {"app.py": stubborn})
    instance = await target.start(
        _spec(artifact, port=None, run_cmd="python3 app.py & python3 app.py")
    )
    async with asyncio.timeout(30):
        while len(await asyncio.to_thread(_group_of, instance.ref)) < 4:
            await asyncio.sleep(0.1)
    await target.stop(instance.ref, grace=0.5)
    assert await asyncio.to_thread(_group_of, instance.ref) == []


async def test_a_leftover_is_found_on_disk_and_removed(
    tmp_path: Path, source_tar: Callable[[dict[str, str]], Path]
) -> None:
    """What an earlier daemon left (a record, a process with the marker) is listed by the next
    one, reported stopped, and stop() kills it."""
    config = make_config(tmp_path / "data")
    first = ProcessTarget(config, "agt_test")
    artifact = await _release(first, source_tar, {"app.py": SERVER})
    instance = await first.start(_spec(artifact))
    # As if this daemon had died without stopping anything: its supervision ends (else it
    # would start the app again once the next daemon kills it) and the app runs on.
    left = list(first._running.values())
    for supervised in left:
        assert supervised._task is not None
        supervised._task.cancel()
        await asyncio.gather(supervised._task, return_exceptions=True)
        await supervised.log.close()
    first._running.clear()
    second = ProcessTarget(config, "agt_test")
    assert [i.ref for i in await second.instances()] == [instance.ref]
    assert (await second.status(instance.ref)).status == "stopped"
    assert await asyncio.to_thread(_group_of, instance.ref) != []
    await second.stop(instance.ref)
    async with asyncio.timeout(10):
        while await asyncio.to_thread(_group_of, instance.ref):
            await asyncio.sleep(0.1)
    assert await second.instances() == []
    assert await asyncio.to_thread(kill_marked, instance.ref) == 0
    for supervised in left:  # the dead daemon's handles on the app, closed for this test's sake
        assert supervised._process is not None
        await supervised._process.wait()
        supervised._process._transport.close()  # type: ignore[attr-defined]


NODE_SERVER = """\
const http = require("http");
http.createServer((req, res) => res.end("from node\\n")).listen(process.env.PORT, "127.0.0.1");
"""
PACKAGE = '{"name": "n", "version": "1.0.0", "scripts": {"start": "node s.js"}}'


@pytest.mark.parametrize(
    ("runtime", "files", "path", "body"),
    [
        ("static", {"index.html": "static page\n"}, "/index.html", "static page\n"),
        (
            "nodejs",
            {
                "package.json": PACKAGE,
                "s.js": NODE_SERVER,
            },
            "/",
            "from node\n",
        ),
    ],
)
async def test_static_and_node_releases_run_with_the_catalog_commands(
    target: ProcessTarget,
    source_tar: Callable[[dict[str, str]], Path],
    runtime: str,
    files: dict[str, str],
    path: str,
    body: str,
) -> None:
    artifact = await _release(target, source_tar, files, runtime)
    spec = _spec(artifact)
    instance = await target.start(InstanceSpec(**{**spec.__dict__, "runtime": runtime}))
    assert instance.host_port is not None
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            try:
                async with session.get(f"http://127.0.0.1:{instance.host_port}{path}") as resp:
                    assert (resp.status, await resp.text()) == (200, body)
                    break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
        else:
            raise AssertionError(await target.recent_output(instance.ref))
    await target.stop(instance.ref, grace=2)


async def test_usage_reads_the_instance_process_tree(
    target: ProcessTarget, source_tar: Callable[[dict[str, str]], Path]
) -> None:
    busy = "import time\ndata = bytearray(64 * 1024 * 1024)\nwhile True:\n    pass\n"
    artifact = await _release(target, source_tar, {"app.py": busy})
    instance = await target.start(_spec(artifact, port=None))
    first = await target.usage([instance.ref, "proc-gone-1-000000"])
    assert set(first) == {instance.ref} and first[instance.ref].cpu_percent == 0.0
    async with asyncio.timeout(30):
        while (now := (await target.usage([instance.ref]))[instance.ref]).memory_bytes < 64 << 20:
            await asyncio.sleep(0.5)
    await asyncio.sleep(1)
    now = (await target.usage([instance.ref]))[instance.ref]
    assert now.cpu_percent > 10 and now.restarts == 0, now
    await target.stop(instance.ref, grace=1)
    assert await target.usage([instance.ref]) == {}
