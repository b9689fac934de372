"""A database's container that stops, restarts or goes is brought back with its data (the
scheduler's watch; the same reconcile runs at start)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from dployr.keys import DATABASES, DB, SCHEDULER
from dployr.scheduler import WATCH_DATABASES
from dployr.store import databases as store
from tests.databases.conftest import (
    Client,
    database_container,
    docker,
    running_database,
    wait_status,
)
from tests.databases.test_backups import read, write
from tests.webhooks.conftest import eventually


async def test_a_removed_or_stopped_container_comes_back_with_its_data(
    dbclient: Client, auth: dict[str, str], data_dir: Path
) -> None:
    record, password = await running_database(dbclient, auth, name="durable", engine="postgres")
    first = await database_container(data_dir, record["id"])
    assert first is not None
    await write(first, record, password, "kept")
    watch = dbclient.app[SCHEDULER].get_job(WATCH_DATABASES)  # type: ignore[index]
    assert watch is not None

    async def settled() -> bool:
        """The watch's round is over (it brought the database back, or gave up)."""
        return not dbclient.app[DATABASES].busy(record["id"])  # type: ignore[index]

    def answers(container: str) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            try:
                return await read(container, record, password) == "kept"
            except AssertionError:  # still starting
                return False

        return check

    # docker restart: the engine brings it back itself; it serves its data.
    assert await docker("restart", first) == 0
    assert await eventually(answers(first), seconds=120)

    # docker rm -f: reconcile makes it again from its row and its volume, on the same port.
    assert await docker("rm", "-f", first) == 0
    watch.modify(next_run_time=datetime.now(UTC))

    async def replaced() -> str | None:
        found = await database_container(data_dir, record["id"])
        return found if found not in (None, first) else None

    second = await eventually(replaced, seconds=120)
    await eventually(settled, seconds=240)
    again = await wait_status(dbclient, auth, record["id"])
    assert again["status"] == "running" and again["host_port"] == record["host_port"], again
    assert await eventually(answers(second), seconds=120)

    # docker stop: reconcile starts it again.
    assert await docker("stop", second) == 0
    watch.modify(next_run_time=datetime.now(UTC))
    assert await eventually(answers(second), seconds=120)
    await eventually(settled, seconds=240)
    assert (await wait_status(dbclient, auth, record["id"]))["status"] == "running"
    assert await database_container(data_dir, record["id"]) == second


async def test_a_stopped_database_that_answers_again_is_running(
    dbclient: Client, auth: dict[str, str]
) -> None:
    record, _ = await running_database(dbclient, auth, name="back", engine="redis")
    # As reconcile leaves one it could not bring back (its container started again since).
    db = dbclient.app[DB]  # type: ignore[index]
    await store.update_database(db, record["id"], {"status": "stopped", "error": "was down"})
    assert (await wait_status(dbclient, auth, record["id"], ("stopped",)))["error"] == "was down"
    dbclient.app[SCHEDULER].get_job(WATCH_DATABASES).modify(next_run_time=datetime.now(UTC))  # type: ignore[index]
    again = await wait_status(dbclient, auth, record["id"], ("running",), limit=120)
    assert again["error"] is None
