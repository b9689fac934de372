"""Projects: CRUD, pagination, search and status filters, ownership."""

import pytest

from tests.conftest import user_headers


async def make(client, headers, name, **extra):
    resp = await client.post("/api/v1/projects", json={"name": name, **extra}, headers=headers)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_crud(client, admin):
    project = await make(client, admin, "shop", description="the shop", settings={"a": 1})
    assert project["status"] == "active" and project["settings"] == {"a": 1}
    assert project["created_at"].endswith("Z")
    url = f"/api/v1/projects/{project['id']}"
    resp = await client.put(url, json={"status": "archived", "description": ""}, headers=admin)
    updated = await resp.json()
    assert (updated["status"], updated["description"], updated["name"]) == ("archived", "", "shop")
    assert (await (await client.get(url, headers=admin)).json())["status"] == "archived"
    assert (await client.delete(url, headers=admin)).status == 204
    assert (await client.get(url, headers=admin)).status == 404


async def test_duplicate_name_is_a_conflict(client, admin):
    await make(client, admin, "shop")
    resp = await client.post("/api/v1/projects", json={"name": "shop"}, headers=admin)
    assert resp.status == 409
    other = await make(client, admin, "other")
    resp = await client.put(f"/api/v1/projects/{other['id']}", json={"name": "shop"}, headers=admin)
    assert resp.status == 409


async def test_pagination_newest_first(client, admin):
    for i in range(25):
        await make(client, admin, f"p{i:02d}")
    body = await (await client.get("/api/v1/projects", headers=admin)).json()
    assert (body["page"], body["per_page"], body["total"], body["total_pages"]) == (1, 20, 25, 2)
    assert body["items"][0]["name"] == "p24"
    body = await (await client.get("/api/v1/projects?page=2&limit=10", headers=admin)).json()
    assert [p["name"] for p in body["items"]] == [f"p{i:02d}" for i in range(14, 4, -1)]
    body = await (await client.get("/api/v1/projects?per_page=1000", headers=admin)).json()
    assert body["per_page"] == 100 and len(body["items"]) == 25
    body = await (await client.get("/api/v1/projects?page=9", headers=admin)).json()
    assert body["items"] == [] and body["total"] == 25


@pytest.mark.parametrize(
    "query", ["page=abc", "page=0", "per_page=-1", "per_page=1.5", "limit=x", "status=gone"]
)
async def test_bad_query_parameters(client, admin, query):
    resp = await client.get(f"/api/v1/projects?{query}", headers=admin)
    assert resp.status == 400
    body = await resp.json()
    assert body["error"]["code"] == "validation_error"
    assert body["error"]["details"]["field"] == query.split("=")[0]


async def test_search_is_a_literal_substring(client, admin):
    await make(client, admin, "web-shop")
    await make(client, admin, "api_100%")
    for fragment, expected in [
        ("shop", ["web-shop"]),
        ("' OR 1=1 --", []),
        ('"; DROP TABLE projects; --', []),
        ("%", ["api_100%"]),
        ("_", ["api_100%"]),
        ("\\", []),
    ]:
        resp = await client.get("/api/v1/projects", params={"search": fragment}, headers=admin)
        assert resp.status == 200, fragment
        assert [p["name"] for p in (await resp.json())["items"]] == expected, fragment
    assert (await (await client.get("/api/v1/projects", headers=admin)).json())["total"] == 2


async def test_status_filter(client, admin):
    a = await make(client, admin, "a")
    await make(client, admin, "b")
    await client.put(f"/api/v1/projects/{a['id']}", json={"status": "archived"}, headers=admin)
    body = await (await client.get("/api/v1/projects?status=archived", headers=admin)).json()
    assert [p["name"] for p in body["items"]] == ["a"]


async def test_ownership(client, admin):
    mine = await make(client, admin, "admins")
    bob = await user_headers(client, admin, "bob@x.io")
    bobs = await make(client, bob, "bobs")
    listing = await (await client.get("/api/v1/projects", headers=bob)).json()
    assert [p["name"] for p in listing["items"]] == ["bobs"]
    for method in ("get", "put", "delete"):
        kwargs = {"json": {"name": "x"}} if method == "put" else {}
        resp = await getattr(client, method)(
            f"/api/v1/projects/{mine['id']}", headers=bob, **kwargs
        )
        assert resp.status == 404, method
    # An admin sees everyone's.
    listing = await (await client.get("/api/v1/projects", headers=admin)).json()
    assert {p["name"] for p in listing["items"]} == {"admins", "bobs"}
    assert (await client.get(f"/api/v1/projects/{bobs['id']}", headers=admin)).status == 200


async def test_settings_must_be_small(client, admin):
    resp = await client.post(
        "/api/v1/projects", json={"name": "big", "settings": {"k": "x" * 70_000}}, headers=admin
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["details"]["field"] == "settings"


async def test_list_items_are_the_single_objects(client, admin):
    """Lists are rendered by SQLite, single objects by Python: the same JSON either way."""
    await make(client, admin, "plain")
    await make(
        client,
        admin,
        'quotes " and \\ and ünïcode ✓',
        description='line one\nline "two"',
        settings={"nested": {"a": [1, 2.5, None, True]}},
    )
    listing = await (await client.get("/api/v1/projects", headers=admin)).json()
    assert len(listing["items"]) == 2
    for item in listing["items"]:
        single = await (await client.get(f"/api/v1/projects/{item['id']}", headers=admin)).json()
        assert item == single
