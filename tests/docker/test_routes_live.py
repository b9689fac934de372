"""A deployment's `domain` becomes its route when it goes live, the service lists it, another
service cannot take it, and deleting the service removes its routes (with route.deleted)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp.test_utils import TestClient

from dployr.keys import DB
from dployr.store.events import events_after
from tests.docker.conftest import STATIC_APP, make_repo, wait_done

ROUTES = "/api/v1/proxy/routes"


async def test_a_domain_routes_the_service_until_it_is_deleted(
    dclient: TestClient,  # type: ignore[type-arg]
    auth: dict[str, str],
    tmp_path: Path,
) -> None:
    repo = await asyncio.to_thread(make_repo, tmp_path / "app", STATIC_APP)
    body = {
        "name": "web",
        "source": "local",
        "path": str(repo),
        "runtime": "static",
        "port": 8080,
        "domain": "Web.localhost",
    }
    resp = await dclient.post("/api/v1/deployments", json=body, headers=auth)
    assert resp.status == 202, await resp.text()
    live = await wait_done(dclient, auth, (await resp.json())["id"])
    assert live["status"] == "live", live
    sid = live["service_id"]

    listing = await (await dclient.get(ROUTES, headers=auth)).json()
    assert [
        (r["domain"], r["path_prefix"], r["tls"], r["service_id"]) for r in listing["items"]
    ] == [("web.localhost", "/", "off", sid)]
    route = listing["items"][0]
    service = await (await dclient.get(f"/api/v1/services/{sid}", headers=auth)).json()
    assert service["routes"] == [
        {
            "id": route["id"],
            "domain": "web.localhost",
            "path_prefix": "/",
            "tls": "off",
            "port": None,
        }
    ]
    # An API route on another path of the same service, next to the deployment's one.
    resp = await dclient.post(
        ROUTES,
        json={"domain": "web.localhost", "service_id": sid, "path_prefix": "/v2", "port": 8080},
        headers=auth,
    )
    assert resp.status == 201, await resp.text()

    # Another service asking for the domain is refused at once; nothing is queued.
    resp = await dclient.post("/api/v1/deployments", json={**body, "name": "other"}, headers=auth)
    assert resp.status == 409, await resp.text()
    assert (await resp.json())["error"]["details"]["field"] == "domain"
    # A redeploy of the service that holds it keeps its one route.
    resp = await dclient.post("/api/v1/deployments", json=body, headers=auth)
    assert resp.status == 202, await resp.text()
    again = await wait_done(dclient, auth, (await resp.json())["id"])
    assert again["status"] == "live", again
    assert (await (await dclient.get(ROUTES, headers=auth)).json())["total"] == 2

    resp = await dclient.delete(f"/api/v1/services/{sid}", headers=auth)
    assert resp.status == 204, await resp.text()
    assert (await (await dclient.get(ROUTES, headers=auth)).json())["total"] == 0
    assert (await dclient.get(f"{ROUTES}/{route['id']}", headers=auth)).status == 404
    kinds = [e.type for e in await events_after(dclient.app[DB], 0, None) if "route" in e.type]
    assert kinds == ["route.created"] * 2 + ["route.deleted"] * 2
