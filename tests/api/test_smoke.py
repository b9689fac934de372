"""A first pass over the main flows, end to end through the real app."""

from tests.conftest import user_headers


async def test_register_login_create_project(client, admin):
    resp = await client.post("/api/v1/projects", json={"name": "web"}, headers=admin)
    assert resp.status == 201, await resp.text()
    project = await resp.json()
    assert project["id"].startswith("prj_")
    resp = await client.get("/api/v1/projects", headers=admin)
    body = await resp.json()
    assert body["total"] == 1 and body["items"][0]["name"] == "web"
    assert resp.headers["X-RateLimit-Limit"] == "100000"
    other = await user_headers(client, admin, "bob@example.com")
    resp = await client.get(f"/api/v1/projects/{project['id']}", headers=other)
    assert resp.status == 404
