"""The Router's split (SPEC §15): routes of services live on the swarm target go to the swarm
proxy with `tasks.<service>:<port>` upstreams, the rest to the host proxy; neither sees the
other's, and the swarm proxy is never started while no swarm service exists."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Collection, Sequence
from pathlib import Path

import pytest

from dployr.errors import ProxyError
from dployr.pipeline.routing import Router
from dployr.proxy.protocol import Route, Upstreams
from dployr.runtime.swarm_names import upstream
from dployr.store.db import Database
from tests.conftest import make_config

NOW = "2026-01-01T00:00:00Z"


class Recorder:
    """Records what each proxy was asked, in one shared log (the order matters)."""

    def __init__(self, name: str, log: list[tuple[str, object]]) -> None:
        self.name = name
        self.log = log
        self.fail: ProxyError | None = None

    async def apply(self, routes: Sequence[Route], upstreams: Upstreams) -> None:
        if self.fail is not None:
            failure, self.fail = self.fail, None
            raise failure
        used = {r.upstream_key: list(upstreams.get(r.upstream_key, ())) for r in routes}
        self.log.append((f"{self.name}.apply", ([r.id for r in routes], used)))

    async def ensure(self, networks: Collection[str]) -> None:
        self.log.append((f"{self.name}.ensure", sorted(networks)))

    async def remove(self) -> None:
        self.log.append((f"{self.name}.remove", None))

    async def problem(self) -> str | None:
        return None

    def https(self) -> str:
        return "off"


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "d.db")
    async with database.transaction() as conn:
        for user in ("usr_a", "usr_b", "usr_c", "usr_d"):
            await conn.execute(
                "INSERT INTO users (id, name, email, password_hash, role, created_at, updated_at)"
                " VALUES (?, ?, ?, 'x', 'user', ?, ?)",
                (user, user, f"{user}@example.com", NOW, NOW),
            )
            await conn.execute(
                "INSERT INTO projects (id, owner_id, name, created_at, updated_at)"
                " VALUES (?, ?, 'p', ?, ?)",
                (f"prj_{user}", user, NOW, NOW),
            )
    yield database
    await database.close()


async def add_service(
    db: Database,
    service_id: str,
    owner: str,
    target: str,
    *,
    host_port: int | None = None,
    route: bool = True,
) -> None:
    """A service whose live release runs on `target` (port 8080), with a route to it."""
    spec = json.dumps({"target": target, "port": 8080})
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO services (id, owner_id, project_id, name, runtime, target,"
            " hook_secret_enc, current_deployment_id, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, 'python', ?, 'x', ?, ?, ?)",
            (service_id, owner, f"prj_{owner}", service_id, target, f"dep_{service_id}", NOW,
             NOW),
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO deployments (id, service_id, owner_id, project_id, number, status,"
            " spec, env_enc, env_public, triggered_by, stages, host_port, instance_ref,"
            " created_at) VALUES (?, ?, ?, ?, 1, 'live', ?, '', '{}', 'api', '[]', ?, ?, ?)",
            (f"dep_{service_id}", service_id, owner, f"prj_{owner}", spec, host_port,
             f"ref-{service_id}", NOW),
        )  # fmt: skip
        if route:
            await conn.execute(
                "INSERT INTO routes (id, service_id, domain, tls, created_at)"
                " VALUES (?, ?, ?, 'off', ?)",
                (f"rte_{service_id}", service_id, f"{service_id}.localhost", NOW),
            )


def make_router(db: Database, tmp_path: Path) -> tuple[Router, Recorder, Recorder]:
    log: list[tuple[str, object]] = []
    host, swarm = Recorder("host", log), Recorder("swarm", log)
    return Router(db, host, make_config(tmp_path), swarm), host, swarm


async def test_without_a_swarm_route_the_swarm_proxy_is_only_removed(
    db: Database, tmp_path: Path
) -> None:
    """At a sync (the start) a swarm proxy left by a daemon killed before its first swarm
    route was committed is removed (a no-op where there is none); it is never started."""
    await add_service(db, "svc_d", "usr_a", "docker", host_port=5000)
    router, host, _ = make_router(db, tmp_path)
    await router.sync()
    assert host.log == [
        ("swarm.remove", None),
        ("host.apply", (["rte_svc_d"], {"svc_d": ["127.0.0.1:5000"]})),
    ]


async def test_a_swarm_service_without_routes_starts_no_proxy(db: Database, tmp_path: Path) -> None:
    """A worker (or a service not routed yet) takes no ports on the managers."""
    await add_service(db, "svc_d", "usr_a", "docker", host_port=5000)
    await add_service(db, "svc_w", "usr_b", "swarm", route=False)
    router, host, _ = make_router(db, tmp_path)
    await router.sync()
    await router.prepare_swarm("usr_b")
    assert host.log == [
        ("swarm.remove", None),
        ("host.apply", (["rte_svc_d"], {"svc_d": ["127.0.0.1:5000"]})),
    ]


async def test_each_proxy_gets_its_own_routes(db: Database, tmp_path: Path) -> None:
    await add_service(db, "svc_d", "usr_a", "docker", host_port=5000)
    await add_service(db, "svc_s", "usr_b", "swarm")
    await add_service(db, "svc_w", "usr_c", "swarm", route=False)
    router, host, _ = make_router(db, tmp_path)
    await router.sync()
    await router.prepare_swarm("usr_d")  # before a first release of usr_d goes live
    assert host.log == [
        ("swarm.ensure", ["dployr-usr_b", "dployr-usr_c"]),
        ("swarm.apply", (["rte_svc_s"], {"svc_s": [upstream("svc_s", 8080)]})),
        ("host.apply", (["rte_svc_d"], {"svc_d": ["127.0.0.1:5000"]})),
        ("swarm.ensure", ["dployr-usr_b", "dployr-usr_c", "dployr-usr_d"]),
    ]


async def test_a_service_moving_to_swarm_is_served_there_first(
    db: Database, tmp_path: Path
) -> None:
    await add_service(db, "svc_d", "usr_a", "docker", host_port=5000)
    router, host, _ = make_router(db, tmp_path)
    await router.sync()
    host.log.clear()
    async with router.changing(point={"svc_d": [upstream("svc_d", 8080)]}):
        pass
    assert host.log == [
        ("swarm.ensure", ["dployr-usr_a"]),
        ("swarm.apply", (["rte_svc_d"], {"svc_d": [upstream("svc_d", 8080)]})),
        ("host.apply", ([], {})),
    ]
    # The commit did not happen (the row still says docker): a sync puts it back, and the
    # swarm proxy, which serves no swarm service now, is removed.
    host.log.clear()
    await router.sync()
    assert host.log == [
        ("swarm.remove", None),
        ("host.apply", (["rte_svc_d"], {"svc_d": ["127.0.0.1:5000"]})),
    ]


async def test_a_stopped_swarm_service_stays_with_the_swarm_proxy(
    db: Database, tmp_path: Path
) -> None:
    await add_service(db, "svc_s", "usr_b", "swarm")
    router, host, _ = make_router(db, tmp_path)
    await router.sync()
    host.log.clear()
    async with router.changing(point={"svc_s": []}):
        pass
    assert host.log == [
        ("swarm.ensure", ["dployr-usr_b"]),
        ("swarm.apply", (["rte_svc_s"], {"svc_s": []})),  # answered 503 there
    ]


async def test_a_swarm_proxy_failure_leaves_the_table_as_committed(
    db: Database, tmp_path: Path
) -> None:
    await add_service(db, "svc_s", "usr_b", "swarm")
    router, host, swarm = make_router(db, tmp_path)
    await router.sync()
    host.log.clear()
    swarm.fail = ProxyError("swarm", "refused")
    new = Route("rte_new", "new.localhost", "/", "off", "svc_s")
    with pytest.raises(ProxyError):
        async with router.changing(add=[new]):
            raise AssertionError("the change must not be committed")
    # The failed apply left the swarm proxy unknown: the table is applied to it again.
    assert host.log == [
        ("swarm.ensure", ["dployr-usr_b"]),
        ("swarm.ensure", ["dployr-usr_b"]),
        ("swarm.apply", (["rte_svc_s"], {"svc_s": [upstream("svc_s", 8080)]})),
    ]


async def test_a_sync_serves_the_host_routes_when_the_swarm_proxy_fails(
    db: Database, tmp_path: Path
) -> None:
    """At start, an engine that does not answer must not keep the host's routes unserved."""
    await add_service(db, "svc_d", "usr_a", "docker", host_port=5000)
    await add_service(db, "svc_s", "usr_b", "swarm")
    router, host, swarm = make_router(db, tmp_path)
    swarm.fail = ProxyError("swarm", "the engine is down")
    with pytest.raises(ProxyError):
        await router.sync()
    assert host.log == [
        ("swarm.ensure", ["dployr-usr_b"]),
        ("host.apply", (["rte_svc_d"], {"svc_d": ["127.0.0.1:5000"]})),
    ]
