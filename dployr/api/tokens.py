"""/tokens: long-lived API tokens for scripts and CI; the secret is shown once."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dployr.api import schemas
from dployr.api.openapi import PAGING, operation
from dployr.api.users import identity_of
from dployr.api.validation import page_json, page_request, read_json
from dployr.errors import NotFound
from dployr.keys import AUTH, DB
from dployr.store import tokens
from dployr.store.tokens import ApiToken

routes = web.RouteTableDef()


def token_json(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "user_id": token.user_id,
        "name": token.name,
        "prefix": token.prefix,
        "created_at": token.created_at,
        "expires_at": token.expires_at,
        "last_used_at": token.last_used_at,
    }


@routes.get("/api/v1/tokens", allow_head=False)
@operation(
    "Your API tokens (secrets are never shown again)",
    tag="tokens",
    query=PAGING,
    responses={200: schemas.ref("ApiTokenPage")},
)
async def list_tokens(request: web.Request) -> web.Response:
    identity = identity_of(request)
    owner = None if identity.user.is_admin else identity.user.id
    page = await tokens.list_tokens(request.app[DB], page_request(request), owner)
    return web.json_response(page_json(page, [token_json(t) for t in page.items]))


@routes.post("/api/v1/tokens")
@operation(
    "Create an API token; `token` is in this response only",
    tag="tokens",
    body=schemas.CREATE_TOKEN,
    responses={201: schemas.ref("ApiToken")},
)
async def create_token(request: web.Request) -> web.Response:
    identity = identity_of(request)
    body = await read_json(request, schemas.CREATE_TOKEN)
    token, secret = await request.app[AUTH].create_api_token(
        identity.user, body["name"], body.get("expires_in_days")
    )
    return web.json_response({**token_json(token), "token": secret}, status=201)


@routes.delete("/api/v1/tokens/{id}")
@operation("Revoke an API token", tag="tokens", responses={204: None})
async def delete_token(request: web.Request) -> web.Response:
    identity = identity_of(request)
    owner = None if identity.user.is_admin else identity.user.id
    db = request.app[DB]
    token = await tokens.get_token(db, request.match_info["id"], owner)
    if token is None:
        raise NotFound("No such API token")
    await tokens.delete_token(db, token.id)
    return web.Response(status=204)
