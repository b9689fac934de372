"""`replicas` and `placement` (SPEC §15): validated on POST and PUT /deployments, refused on
every target but swarm. The engine is never reached: its socket is a path where nothing listens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from dployr.app import create_app
from tests.conftest import bearer, login, make_config, register

Client = TestClient  # type: ignore[type-arg]
IMAGE = {"name": "web", "source": "image", "runtime": "image", "image": "busybox:stable"}
PREFIX = "#/components/schemas/"


@pytest.fixture
async def dep(aiohttp_client: Any, tmp_path: Path) -> Client:
    config = make_config(
        tmp_path / "data",
        runtime={
            "default_target": "docker",
            "docker_host": f"unix://{tmp_path}/nothing-listens.sock",
        },
    )
    client: Client = await aiohttp_client(create_app(config))
    return client


async def _admin(client: Client) -> dict[str, str]:
    await register(client)
    return bearer((await login(client))["access_token"])


async def _post(client: Client, headers: dict[str, str], **body: Any) -> tuple[int, Any]:
    resp = await client.post("/api/v1/deployments", json=body, headers=headers)
    return resp.status, await resp.json()


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"replicas": 0}, "replicas"),
        ({"replicas": 101}, "replicas"),
        ({"replicas": "2"}, "replicas"),
        ({"replicas": 1.5}, "replicas"),
        ({"placement": "node.role==worker"}, "placement"),
        ({"placement": ["node.role = worker"]}, "placement.0"),
        ({"placement": ["node.role==worker", "Node.role==worker"]}, "placement.1"),
        ({"placement": ["node.role=="]}, "placement.0"),
        ({"placement": ["node.role==worker\n"]}, "placement.0"),
        ({"placement": ["node.labels.tier~=web"]}, "placement.0"),
        ({"placement": ["node.labels.a==b"] * 21}, "placement"),
    ],
)
async def test_out_of_range_replicas_and_bad_constraints_are_400s(
    dep: Client, extra: dict[str, Any], field: str
):
    admin = await _admin(dep)
    status, body = await _post(dep, admin, **IMAGE, target="swarm", **extra)
    assert status == 400, body
    assert body["error"]["code"] == "validation_error"
    assert body["error"]["details"]["field"] == field, body


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"replicas": 2}, "replicas"),
        ({"replicas": 1}, "replicas"),
        ({"placement": ["node.role==worker"]}, "placement"),
        ({"placement": ["node.labels.tier!=db"], "target": "process"}, "placement"),
    ],
)
async def test_replicas_and_placement_are_only_for_the_swarm_target(
    dep: Client, extra: dict[str, Any], field: str
):
    admin = await _admin(dep)
    status, body = await _post(dep, admin, **{**IMAGE, **extra})
    assert status == 400, body
    assert body["error"]["details"]["field"] == field, body
    assert "is only for the swarm target" in body["error"]["message"]


async def test_a_put_follows_the_same_rules(dep: Client):
    admin = await _admin(dep)
    # Valid and empty values are no swarm fields: the release is taken (it fails later, as
    # no engine listens, which does not matter here).
    status, created = await _post(dep, admin, **IMAGE, replicas=None, placement=[])
    assert status == 202, created
    assert created["replicas"] is None and created["placement"] == []
    url = f"/api/v1/deployments/{created['id']}"
    for change, field in (
        ({"replicas": 3}, "replicas"),
        ({"placement": ["node.role==manager"]}, "placement"),
        ({"replicas": 0, "target": "swarm"}, "replicas"),
        ({"placement": ["node.role"], "target": "swarm"}, "placement.0"),
    ):
        resp = await dep.put(url, json=change, headers=admin)
        assert resp.status == 400, await resp.text()
        assert (await resp.json())["error"]["details"]["field"] == field, change


async def test_the_openapi_document_names_them(dep: Client):
    doc = await (await dep.get("/api/v1/openapi.json")).json()
    components = doc["components"]["schemas"]
    for body in ("CreateDeployment", "UpdateDeployment"):
        props = components[body]["properties"]
        assert props["replicas"] == {"$ref": PREFIX + "Replicas"}
        assert props["placement"] == {"$ref": PREFIX + "Placement"}
    assert components["Replicas"] == {"type": ["integer", "null"], "minimum": 1, "maximum": 100}
    assert components["Placement"]["maxItems"] == 20
    assert components["Placement"]["items"]["pattern"] == (
        "^[a-z][a-z0-9._-]*(==|!=)[A-Za-z0-9._-]+$"
    )
    assert "replicas" in components["Deployment"]["required"]


async def test_swarm_where_this_engine_cannot_run_it_is_a_400_that_says_why(dep: Client) -> None:
    admin = await _admin(dep)
    status, body = await _post(dep, admin, **IMAGE, target="swarm", port=8080)
    assert status == 400, body
    assert body["error"]["details"]["field"] == "target"
    assert "swarm cannot run releases here" in body["error"]["message"], body
    assert "no docker engine answers" in body["error"]["message"], body
