"""The deployment log on a real SQLite file: capped in bytes, with a last line saying so."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dployr.pipeline import logbook
from dployr.pipeline.logbook import Logbook
from dployr.store import deployments, users
from dployr.store.db import Database
from dployr.store.deployments import NewDeployment
from dployr.store.projects import default_project_id


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "d.db")
    yield database
    await database.close()


async def new_deployment(db: Database) -> str:
    user = await users.create_user(db, name="A", email="a@example.com", password_hash="x")
    async with db.transaction() as conn:
        project_id = await default_project_id(conn, user.id)
        new = NewDeployment(user.id, project_id, "web", "static", "docker", {}, "api")
        service = await deployments.create_service(conn, new, "enc")
        created = await deployments.insert_deployment(conn, new, service, ("", "{}"))
    return created.id


async def test_a_flood_of_long_lines_stops_at_the_byte_cap_and_says_where(db: Database) -> None:
    deployment_id = await new_deployment(db)
    line = "x" * 4000  # below MAX_LINE: the old line cap alone would keep 20,000 of these (80 MB)
    async with Logbook(db, deployment_id, [], 0) as log:
        for _ in range(3000):  # 12 MB of output
            log.write(line)
    stored = await deployments.log_bytes(db, deployment_id)
    assert stored <= logbook.MAX_BYTES + 1024
    lines = []
    after = 0
    while page := await deployments.read_log(db, deployment_id, after, limit=5000):
        lines += page
        after = page[-1][0]
    kept = len(lines) - 1
    assert kept == logbook.MAX_BYTES // 4001
    last = lines[-1][2]
    dropped = 3000 - kept
    assert last.startswith("[log truncated at ")
    assert f"{dropped} more lines ({dropped * 4001} bytes) dropped" in last
    assert [seq for seq, _, _ in lines] == list(range(1, len(lines) + 1))


async def test_a_resumed_attempt_counts_what_the_log_already_holds(db: Database) -> None:
    deployment_id = await new_deployment(db)
    async with Logbook(db, deployment_id, [], 0, max_bytes=1000) as log:
        for _ in range(6):
            log.write("y" * 99)  # 600 bytes
    seq = await deployments.last_log_seq(db, deployment_id)
    async with Logbook(db, deployment_id, [], seq, max_bytes=1000) as log:
        for _ in range(6):
            log.write("z" * 99)  # only 4 more fit
    lines = await deployments.read_log(db, deployment_id)
    assert [m[0] for _, _, m in lines[:-1]] == ["y"] * 6 + ["z"] * 4
    assert "2 more lines (200 bytes) dropped" in lines[-1][2]


async def test_a_short_log_has_no_truncation_note(db: Database) -> None:
    deployment_id = await new_deployment(db)
    async with Logbook(db, deployment_id, ["s3cret"], 0) as log:
        log.write("token s3cret here\n")
    lines = await deployments.read_log(db, deployment_id)
    assert [m for _, _, m in lines] == ["token ******** here"]


async def test_read_log_pages_stop_at_their_byte_budget(db: Database) -> None:
    deployment_id = await new_deployment(db)
    await deployments.append_log(
        db, deployment_id, [(n, "2026-01-01T00:00:00Z", "a" * 100) for n in range(1, 51)]
    )
    page = await deployments.read_log(db, deployment_id, 0, limit=1000, max_bytes=1000)
    assert [seq for seq, _, _ in page] == list(range(1, 11))  # the 10th line reaches 1000 bytes
    page = await deployments.read_log(db, deployment_id, 45, limit=1000, max_bytes=10)
    assert [seq for seq, _, _ in page] == [46]  # at least one line
    assert await deployments.read_log(db, deployment_id, 50) == []
