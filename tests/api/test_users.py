"""Profiles (/users/me) and the admin's user management."""

from tests.conftest import PASSWORD, bearer, login, register, user_headers


async def test_profile_read_and_update(client, admin):
    resp = await client.get("/api/v1/users/me", headers=admin)
    assert (await resp.json())["name"] == "Admin"
    resp = await client.put(
        "/api/v1/users/me", json={"name": "Root", "email": "Root@Example.com"}, headers=admin
    )
    assert resp.status == 200
    me = await resp.json()
    assert (me["name"], me["email"]) == ("Root", "root@example.com")


async def test_password_change_needs_the_current_one_and_ends_other_sessions(client):
    await register(client)
    other = await login(client)
    this = await login(client)
    resp = await client.put(
        "/api/v1/users/me",
        json={"password": "new password 1"},
        headers=bearer(this["access_token"]),
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["details"]["field"] == "current_password"
    resp = await client.put(
        "/api/v1/users/me",
        json={"password": "new password 1", "current_password": "wrong one"},
        headers=bearer(this["access_token"]),
    )
    assert resp.status == 400
    resp = await client.put(
        "/api/v1/users/me",
        json={"password": "new password 1", "current_password": PASSWORD},
        headers=bearer(this["access_token"]),
    )
    assert resp.status == 200
    assert (await client.get("/api/v1/auth/me", headers=bearer(this["access_token"]))).status == 200
    assert (
        await client.get("/api/v1/auth/me", headers=bearer(other["access_token"]))
    ).status == 401
    resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert resp.status == 401
    resp = await client.post(
        "/api/v1/auth/login", json={"email": "admin@example.com", "password": "new password 1"}
    )
    assert resp.status == 200


async def test_email_taken_is_a_conflict(client, admin):
    bob = await user_headers(client, admin, "bob@x.io")
    resp = await client.put("/api/v1/users/me", json={"email": "admin@example.com"}, headers=bob)
    assert resp.status == 409


async def test_delete_me(client, admin):
    bob = await user_headers(client, admin, "bob@x.io")
    await client.post("/api/v1/projects", json={"name": "p"}, headers=bob)
    assert (await client.delete("/api/v1/users/me", headers=bob)).status == 204
    assert (await client.get("/api/v1/auth/me", headers=bob)).status == 401
    resp = await client.get("/api/v1/projects", headers=admin)
    assert (await resp.json())["total"] == 0  # cascade: bob's project went with him


async def test_last_admin_cannot_leave(client, admin):
    resp = await client.delete("/api/v1/users/me", headers=admin)
    assert resp.status == 409
    me = await (await client.get("/api/v1/auth/me", headers=admin)).json()
    resp = await client.patch(f"/api/v1/users/{me['id']}", json={"role": "user"}, headers=admin)
    assert resp.status == 409


async def test_admin_lists_and_patches_users(client, admin):
    bob = await user_headers(client, admin, "bob@x.io")
    await user_headers(client, admin, "carol@x.io")
    resp = await client.get("/api/v1/users?role=user&search=car", headers=admin)
    body = await resp.json()
    assert body["total"] == 1 and body["items"][0]["email"] == "carol@x.io"
    resp = await client.get("/api/v1/users?per_page=2", headers=admin)
    body = await resp.json()
    assert (body["total"], body["total_pages"], len(body["items"])) == (3, 2, 2)
    assert body["items"][0]["email"] == "carol@x.io"  # newest first
    bob_id = (await (await client.get("/api/v1/auth/me", headers=bob)).json())["id"]
    resp = await client.patch(f"/api/v1/users/{bob_id}", json={"role": "admin"}, headers=admin)
    assert (await resp.json())["role"] == "admin"
    resp = await client.patch("/api/v1/users/usr_nobody", json={"role": "admin"}, headers=admin)
    assert resp.status == 404
    resp = await client.patch(f"/api/v1/users/{bob_id}", json={"role": "root"}, headers=admin)
    assert resp.status == 400


async def test_non_admin_is_forbidden_on_admin_routes(client, admin):
    bob = await user_headers(client, admin, "bob@x.io")
    resp = await client.get("/api/v1/users", headers=bob)
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "forbidden"
    resp = await client.patch("/api/v1/users/usr_x", json={"role": "admin"}, headers=bob)
    assert resp.status == 403
