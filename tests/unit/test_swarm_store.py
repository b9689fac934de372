"""scale_service on a swarm service (SPEC §15): the count is recorded in the store (a real
SQLite file, migrations and all), then the target is asked for it. The target is a fake: the
real scale on a swarm is the swarm target's own test."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dployr.errors import InvalidState
from dployr.pipeline.scale import scale_service
from dployr.store import credentials, services
from dployr.store.db import Database, bundled_migrations
from dployr.store.paging import PageRequest

NOW = "2026-01-01T00:00:00Z"


class FakeSwarm:
    name = "swarm"

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    async def scale(self, ref: str, replicas: int) -> None:
        self.calls.append((ref, replicas))


class FakeDeployer:
    """What scale_service reaches for: the store, the service's lock, the release's target."""

    def __init__(self, db: Database) -> None:
        self.db, self.target = db, FakeSwarm()
        self._lock = asyncio.Lock()

    def service_lock(self, service_id: str) -> asyncio.Lock:
        return self._lock

    def target_of(self, deployment: Any) -> FakeSwarm:
        assert deployment.spec["target"] == "swarm"
        return self.target


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "dployr.db")
    async with database.transaction() as conn:
        await conn.execute(
            "INSERT INTO users (id, name, email, password_hash, role, created_at, updated_at)"
            " VALUES ('usr_1', 'a', 'a@example.com', 'x', 'admin', ?, ?)",
            (NOW, NOW),
        )
        await conn.execute(
            "INSERT INTO projects (id, owner_id, name, created_at, updated_at)"
            " VALUES ('prj_1', 'usr_1', 'default', ?, ?)",
            (NOW, NOW),
        )
        await conn.execute(
            "INSERT INTO services (id, owner_id, project_id, name, runtime, target,"
            " hook_secret_enc, created_at, updated_at)"
            " VALUES ('svc_1', 'usr_1', 'prj_1', 'web', 'image', 'swarm', 'x', ?, ?)",
            (NOW, NOW),
        )
    yield database
    await database.close()


async def _make_live(db: Database) -> None:
    spec = {"target": "swarm", "source": "image", "runtime": "image", "replicas": 2}
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO deployments (id, service_id, owner_id, project_id, number, status,"
            " spec, env_enc, env_public, triggered_by, stages, instance_ref, created_at)"
            " VALUES ('dep_1', 'svc_1', 'usr_1', 'prj_1', 1, 'live', ?, 'x', '{}', 'api',"
            " '[]', 'dployr-svc_1', ?)",
            (json.dumps(spec), NOW),
        )
        await conn.execute("UPDATE services SET current_deployment_id = 'dep_1'")


async def test_the_count_is_recorded_then_swarm_is_asked(db: Database):
    deployer: Any = FakeDeployer(db)
    service = await services.get_service(db, "svc_1", None)
    assert service is not None and service.replicas is None  # never set
    with pytest.raises(InvalidState, match="no live release to scale"):
        await scale_service(deployer, service, 3)
    assert deployer.target.calls == []
    await _make_live(db)
    await scale_service(deployer, service, 3)
    assert deployer.target.calls == [("dployr-svc_1", 3)]
    scaled = await services.get_service(db, "svc_1", None)
    assert scaled is not None and scaled.replicas == 3
    await services.set_replicas(db, "svc_1", 1)
    assert (await services.get_service(db, "svc_1", None)).replicas == 1  # type: ignore[union-attr]


async def test_migration_011_keeps_credentials_and_takes_the_registry_type(tmp_path: Path):
    path = tmp_path / "old.db"
    before = [m for m in await asyncio.to_thread(bundled_migrations) if m.version < 11]
    old = await Database.open(path, before)
    async with old.transaction() as conn:
        await conn.execute(
            "INSERT INTO users (id, name, email, password_hash, role, created_at, updated_at)"
            " VALUES ('usr_1', 'a', 'a@example.com', 'x', 'admin', ?, ?)",
            (NOW, NOW),
        )
        for n in range(3):
            await conn.execute(
                "INSERT INTO credentials (id, owner_id, type, name, secret_enc, created_at)"
                " VALUES (?, 'usr_1', 'token', ?, 'enc', ?)",
                (f"crd_{n}", f"t{n}", NOW),
            )
    await old.close()
    new = await Database.open(path)
    try:
        made = await credentials.create_credential(new, "usr_1", "registry", "hub", "enc")
        page = await credentials.list_credentials(new, PageRequest(1, 20), "usr_1")
        assert [c.id for c in page.items] == [made.id, "crd_2", "crd_1", "crd_0"]
        assert (await credentials.get_credential(new, "crd_1", None)).type == "token"  # type: ignore[union-attr]
    finally:
        await new.close()
