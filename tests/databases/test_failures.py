"""What goes wrong with a database's container says why, and leaves nothing behind."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os

import pytest

from dployr.runtime.protocol import RuntimeFailure
from tests.databases.conftest import Harness, Running


async def test_a_server_that_exits_at_start_is_reported_with_its_output(harness: Harness) -> None:
    # The image's entrypoint refuses an uninitialised database with no password, as the
    # official postgres image does: the container exits and the engine restarts it.
    spec = await harness.spec("postgres", password="")
    container = await harness.dbs.create(spec)
    problem = await harness.dbs.wait_ready(container, spec, 300)
    assert problem is not None
    assert "postgres stopped" in problem
    assert "POSTGRES_PASSWORD is not set" in problem


async def test_an_image_without_the_engine_never_becomes_ready(harness: Harness) -> None:
    spec = await harness.spec("mariadb", image="redis:7")  # runs, but has no mariadb-admin
    container = await harness.dbs.create(spec)
    problem = await harness.dbs.wait_ready(container, spec, 3)
    assert problem is not None
    assert "did not answer mariadb-admin within 3 s" in problem
    assert "Ready to accept connections" in problem  # redis's own last lines


async def test_a_missing_image_fails_the_create_and_leaves_no_container(harness: Harness) -> None:
    spec = await harness.spec("redis", image="dployr-test/no-such-engine:0")
    with pytest.raises(RuntimeFailure, match="dployr-test/no-such-engine:0 is not on this host"):
        await harness.dbs.create(spec)
    assert await harness.dbs.containers() == {}


async def test_a_cancel_during_create_leaves_no_container(harness: Harness) -> None:
    spec = await harness.spec("redis")
    # Cancel after 0, 30, 60 … ms: before the engine call, during it and after it returned.
    for delay_ms in range(0, 300, 30):
        task = asyncio.create_task(harness.dbs.create(spec))
        await asyncio.sleep(delay_ms / 1000)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            won = await task  # it finished first: ours to remove
            await harness.dbs.remove(won, spec, keep_data=True)
        assert await harness.dbs.containers() == {}, delay_ms


async def test_a_failed_backup_leaves_no_file(
    harness: Harness, running_engines: dict[str, Running]
) -> None:
    postgres = running_engines["postgres"]
    wrong = dataclasses.replace(postgres.spec, password="not-the-password")
    dest = harness.data_dir / "backup.dump"
    with pytest.raises(RuntimeFailure, match=r"pg_dump failed .*password authentication failed"):
        await harness.dbs.backup(postgres.container, wrong, dest)
    assert sorted(await asyncio.to_thread(os.listdir, harness.data_dir)) == ["agent_id"]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("engine", ["postgres", "redis"])  # from stdout; from a file inside
async def test_a_cancelled_backup_leaves_no_half_file(
    harness: Harness, running_engines: dict[str, Running], engine: str
) -> None:
    spec, container = running_engines[engine].spec, running_engines[engine].container
    dest = harness.data_dir / "backup.bin"
    # Cancel after 0, 20, 40 … ms: while the dump runs, while it is copied, after it ended.
    for delay_ms in range(0, 400, 20):
        task = asyncio.create_task(harness.dbs.backup(container, spec, dest))
        await asyncio.sleep(delay_ms / 1000)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # The dump's thread may still be ending: it removes what it wrote (bounded wait).
        for _ in range(100):
            names = set(await asyncio.to_thread(os.listdir, harness.data_dir))
            if names <= {"agent_id", dest.name}:
                break
            await asyncio.sleep(0.1)
        assert names <= {"agent_id", dest.name}, (delay_ms, names)
        if dest.name in names:  # the backup won the race: it is whole
            assert (await asyncio.to_thread(dest.stat)).st_size > 0
            await asyncio.to_thread(dest.unlink)
