"""The Router: the proxy gets the whole table plus the change, before the change commits; a
change that fails after the apply is undone in the proxy; nothing is applied twice."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from dployr.pipeline.routing import Router
from dployr.proxy.protocol import DAEMON, Route, Upstreams
from dployr.store.db import Database
from tests.conftest import make_config


class Recorder:
    """Records what it was asked to serve (the real backends are tested in tests/proxy)."""

    name = "recorder"

    def __init__(self) -> None:
        self.applied: list[tuple[list[Route], dict[str, list[str]]]] = []

    async def apply(self, routes: Sequence[Route], upstreams: Upstreams) -> None:
        self.applied.append((list(routes), {k: list(v) for k, v in upstreams.items()}))

    async def problem(self) -> str | None:
        return None

    def https(self) -> str:
        return "off"


async def test_router_applies_before_commit_and_only_what_changed(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "d.db")
    proxy = Recorder()
    config = make_config(tmp_path, proxy={"api_domain": "api.example.com"})
    router = Router(db, proxy, config)
    try:
        await router.sync()
        ((routes, upstreams),) = proxy.applied
        assert [(r.domain, r.service_id, r.tls) for r in routes] == [
            ("api.example.com", None, "auto")
        ]
        assert upstreams[DAEMON] == [f"127.0.0.1:{config.server.port}"]

        # A service without routes switches: the proxy's config would not change.
        async with router.changing(point={"svc_a": ["127.0.0.1:5000"]}):
            pass
        assert len(proxy.applied) == 1

        # A new route is applied first; the caller fails: the table is applied again.
        new = Route("rte_x", "app.example.com", "/", "auto", "svc_a")
        with pytest.raises(RuntimeError):
            async with router.changing(add=[new], point={"svc_a": ["127.0.0.1:5000"]}):
                assert new in proxy.applied[-1][0]
                assert proxy.applied[-1][1]["svc_a"] == ["127.0.0.1:5000"]
                raise RuntimeError("the commit failed")
        assert len(proxy.applied) == 3
        assert [r.id for r in proxy.applied[-1][0]] == ["rte_api"]
    finally:
        await db.close()


async def test_a_cancel_right_after_the_apply_puts_the_table_back(tmp_path: Path) -> None:
    """The caller is cancelled while the proxy applies its change: it will commit nothing, so
    the proxy gets the table as it is again."""
    db = await Database.open(tmp_path / "d.db")
    proxy = Recorder()
    router = Router(db, proxy, make_config(tmp_path))
    started = asyncio.Event()
    release = asyncio.Event()
    original = proxy.apply

    async def slow_apply(routes: Sequence[Route], upstreams: Upstreams) -> None:
        started.set()
        await release.wait()
        await original(routes, upstreams)

    proxy.apply = slow_apply  # type: ignore[method-assign]
    new = Route("rte_x", "app.example.com", "/", "auto", "svc_a")
    committed = []

    async def change() -> None:
        async with router.changing(add=[new]):
            committed.append(new)

    try:
        task = asyncio.create_task(change())
        await started.wait()
        task.cancel()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert committed == []
        assert [r.id for r in proxy.applied[0][0]] == ["rte_x"]  # the change, applied
        assert proxy.applied[-1][0] == []  # then the table again
    finally:
        await db.close()
