"""/auth/* and /users/*: accounts, sessions, profiles, and the admin's view of users."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dployr.api import schemas
from dployr.api.middleware import client_of
from dployr.api.openapi import PAGING, operation, query_param
from dployr.api.validation import (
    page_json,
    page_request,
    query_choice,
    query_text,
    read_json,
)
from dployr.auth.service import Identity, TokenPair, require_admin, require_user
from dployr.errors import NotFound
from dployr.keys import AUTH, CONFIG, DB, EXTRA_QUOTA, IDENTITY, RATE_LIMITS
from dployr.store import users
from dployr.store.users import User

routes = web.RouteTableDef()
USER = schemas.ref("User")


def user_json(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "name": user.name,
        "username": user.username,
        "email": user.email,
        "role": user.role,
        "is_active": user.is_active,
        "created_at": user.created_at,
        "updated_at": user.updated_at,
        "last_login": user.last_login,
    }


def pair_json(pair: TokenPair) -> dict[str, Any]:
    return {
        "access_token": pair.access_token,
        "refresh_token": pair.refresh_token,
        "token_type": "bearer",
        "expires_in": pair.expires_in,
        "user": user_json(pair.user),
    }


def identity_of(request: web.Request) -> Identity:
    return require_user(request.get(IDENTITY))


@routes.post("/api/v1/auth/register")
@operation(
    "Create an account (the first becomes admin)",
    tag="auth",
    public=True,
    body=schemas.REGISTER,
    responses={201: USER},
)
async def register(request: web.Request) -> web.Response:
    body = await read_json(request, schemas.REGISTER)
    user = await request.app[AUTH].register(
        request.get(IDENTITY),
        name=body["name"],
        email=body["email"].lower(),
        password=body["password"],
        username=body.get("username"),
    )
    return web.json_response(user_json(user), status=201)


@routes.post("/api/v1/auth/login")
@operation(
    "Log in: an access token and a refresh token",
    tag="auth",
    public=True,
    body=schemas.LOGIN,
    responses={200: schemas.ref("TokenPair")},
)
async def login(request: web.Request) -> web.Response:
    body = await read_json(request, schemas.LOGIN)
    email = body["email"].strip().lower()
    if request.app[CONFIG].rate_limit.enabled:
        key = f"{client_of(request).key}|{email}"
        request[EXTRA_QUOTA] = request.app[RATE_LIMITS].login.hit(key)
    pair = await request.app[AUTH].login(email, body["password"])
    return web.json_response(pair_json(pair))


@routes.post("/api/v1/auth/refresh")
@operation(
    "Swap a refresh token for a new pair (the old one is spent)",
    tag="auth",
    public=True,
    body=schemas.REFRESH,
    responses={200: schemas.ref("TokenPair")},
)
async def refresh(request: web.Request) -> web.Response:
    body = await read_json(request, schemas.REFRESH)
    pair = await request.app[AUTH].refresh(body["refresh_token"])
    return web.json_response(pair_json(pair))


@routes.post("/api/v1/auth/logout")
@operation("Revoke this access token and its session", tag="auth", responses={204: None})
async def logout(request: web.Request) -> web.Response:
    await request.app[AUTH].logout(identity_of(request))
    return web.Response(status=204)


@routes.get("/api/v1/auth/me", allow_head=False)
@operation("The current user", tag="auth", responses={200: USER})
async def auth_me(request: web.Request) -> web.Response:
    return web.json_response(user_json(identity_of(request).user))


@routes.get("/api/v1/users/me", allow_head=False)
@operation("Your profile", tag="users", responses={200: USER})
async def get_me(request: web.Request) -> web.Response:
    return web.json_response(user_json(identity_of(request).user))


@routes.put("/api/v1/users/me")
@operation(
    "Change your name, username, email or password",
    tag="users",
    body=schemas.UPDATE_ME,
    responses={200: USER},
)
async def update_me(request: web.Request) -> web.Response:
    identity = identity_of(request)
    body = await read_json(request, schemas.UPDATE_ME)
    changes: dict[str, object] = {k: body[k] for k in ("name", "username") if k in body}
    if "email" in body:
        changes["email"] = body["email"].lower()
    auth = request.app[AUTH]
    if "password" in body:
        changes["password_hash"] = await auth.change_password(
            identity, body.get("current_password"), body["password"]
        )
    user = await users.update_user(request.app[DB], identity.user.id, changes)
    if "password_hash" in changes:
        await auth.revoke_other_sessions(identity)
    return web.json_response(user_json(user))


@routes.delete("/api/v1/users/me")
@operation(
    "Delete your account, projects, credentials and tokens (409 while you own services)",
    tag="users",
    responses={204: None},
)
async def delete_me(request: web.Request) -> web.Response:
    await users.delete_user(request.app[DB], identity_of(request).user.id)
    return web.Response(status=204)


@routes.get("/api/v1/users", allow_head=False)
@operation(
    "Admin: list users",
    tag="users",
    responses={200: schemas.ref("UserPage")},
    query=(
        *PAGING,
        query_param("role", schemas.ROLE),
        query_param("search", {"type": "string"}, "substring of name or email"),
    ),
)
async def list_users(request: web.Request) -> web.Response:
    require_admin(request.get(IDENTITY))
    page = await users.list_users(
        request.app[DB],
        page_request(request),
        role=query_choice(request, "role", ("admin", "user")),
        search=query_text(request, "search"),
    )
    return web.json_response(page_json(page, [user_json(u) for u in page.items]))


@routes.patch("/api/v1/users/{id}")
@operation(
    "Admin: change a user's role or disable them",
    tag="users",
    body=schemas.PATCH_USER,
    responses={200: USER},
)
async def patch_user(request: web.Request) -> web.Response:
    require_admin(request.get(IDENTITY))
    body = await read_json(request, schemas.PATCH_USER)
    db = request.app[DB]
    user_id = request.match_info["id"]
    if await users.get_user(db, user_id) is None:
        raise NotFound("No such user")
    user = await users.update_user(db, user_id, dict(body))
    if body.get("is_active") is False:
        await request.app[AUTH].revoke_other_sessions(Identity(user))
    return web.json_response(user_json(user))
