"""Receivers: real aiohttp servers on 127.0.0.1 that answer a scripted list of statuses."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from dployr.app import create_app
from dployr.config import Config
from dployr.keys import DB
from dployr.store.events import Event, append_event
from tests.conftest import bearer, login, make_config, register

Client = TestClient  # type: ignore[type-arg]


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers `script` in order (then `then`), and keeps every request it got."""

    server: TestServer
    script: list[int] = field(default_factory=list)
    then: int = 200
    extra_headers: dict[str, str] = field(default_factory=dict)
    requests: list[Received] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/hook"

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(Received(dict(request.headers), await request.read()))
        status = self.script.pop(0) if self.script else self.then
        return web.Response(status=status, text="r" * 5000, headers=self.extra_headers)


@pytest.fixture
async def receiver(aiohttp_server: Any) -> Receiver:
    holder: list[Receiver] = []

    async def handle(request: web.Request) -> web.Response:
        return await holder[0].handle(request)

    app = web.Application()
    app.router.add_post("/hook", handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    holder.append(Receiver(server))
    return holder[0]


def hook_config(data_dir: Path, alerts: dict[str, Any] | None = None, **webhooks: Any) -> Config:
    settings = {"allow_private": True, "retry_schedule": [1, 1], "timeout": 5.0, **webhooks}
    return make_config(data_dir, webhooks=settings, alerts=alerts or {})


@dataclass
class Agent:
    """A running app, its admin's headers and user id."""

    client: Client
    headers: dict[str, str]
    user_id: str

    async def event(self, type_: str = "deployment.succeeded", owner: str | None = "") -> Event:
        """An event in the persisted log, as the pipeline writes them."""
        owner_id = self.user_id if owner == "" else owner
        return await append_event(self.client.app[DB], type_, owner_id, {"n": 1})  # type: ignore[arg-type]

    async def create_hook(self, url: str, **body: Any) -> dict[str, Any]:
        resp = await self.client.post(
            "/api/v1/webhooks", json={"url": url, **body}, headers=self.headers
        )
        assert resp.status == 201, await resp.text()
        return dict(await resp.json())

    async def deliveries(self, hook_id: str) -> list[dict[str, Any]]:
        resp = await self.client.get(f"/api/v1/webhooks/{hook_id}/deliveries", headers=self.headers)
        assert resp.status == 200, await resp.text()
        return list((await resp.json())["items"])


StartAgent = Callable[..., Awaitable[Agent]]


@pytest.fixture
def start_agent(aiohttp_client: Any, tmp_path: Path) -> StartAgent:
    """Start the real app on tmp_path/data (again, after a stop: same data dir)."""

    async def start(
        first: bool = True, alerts: dict[str, Any] | None = None, **webhooks: Any
    ) -> Agent:
        config = hook_config(tmp_path / "data", alerts, **webhooks)
        client = await aiohttp_client(create_app(config))
        if first:
            await register(client)
        headers = bearer((await login(client))["access_token"])
        me = await (await client.get("/api/v1/auth/me", headers=headers)).json()
        return Agent(client, headers, me["id"])

    return start


async def eventually(check: Callable[[], Awaitable[Any]], seconds: float = 60) -> Any:
    """Poll until check() returns something true (no timing is asserted: only an upper bound
    so a broken worker fails the test instead of hanging it)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        value = await check()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.1)
