"""/webhooks: outbound webhooks, a user's own; the secret is shown once, at creation."""

from __future__ import annotations

from aiohttp import web

from dployr.api import schemas
from dployr.api import webhook_schemas as ws
from dployr.api.openapi import PAGING, operation
from dployr.api.projects import owner_filter
from dployr.api.users import identity_of
from dployr.api.validation import page_json, page_request, read_json
from dployr.errors import NotFound, ValidationError
from dployr.keys import BOX, CONFIG, DB
from dployr.store import webhooks
from dployr.store.webhooks import ALL_EVENTS, Webhook, WebhookChange
from dployr.webhooks.address import AddressRefused, check_url
from dployr.webhooks.signing import generate_secret, secret_problem

routes = web.RouteTableDef()
WEBHOOK = schemas.ref("Webhook")


async def webhook_of(request: web.Request) -> Webhook:
    """The webhook in the path, if the caller may see it; another user's is a 404."""
    webhook = await webhooks.get_webhook(
        request.app[DB], request.match_info["id"], owner_filter(identity_of(request))
    )
    if webhook is None:
        raise NotFound("No such webhook")
    return webhook


async def checked_url(request: web.Request, url: str) -> str:
    try:
        await check_url(url, request.app[CONFIG].webhooks.allow_private)
    except AddressRefused as err:
        raise ValidationError("url", str(err)) from None
    return url


def checked_secret(secret: str) -> str:
    problem = secret_problem(secret)
    if problem is not None:
        raise ValidationError("secret", problem)
    return secret


@routes.get("/api/v1/webhooks", allow_head=False)
@operation(
    "List webhooks (never their secrets)",
    tag="webhooks",
    responses={200: schemas.ref("WebhookPage")},
    query=PAGING,
)
async def list_webhooks(request: web.Request) -> web.Response:
    page = await webhooks.list_webhooks(
        request.app[DB], page_request(request), owner_filter(identity_of(request))
    )
    return web.json_response(page_json(page, [w.public() for w in page.items]))


@routes.post("/api/v1/webhooks")
@operation(
    "Create a webhook; a secret given must be ≥ 24 bytes, else one is generated (shown once)",
    tag="webhooks",
    body=ws.CREATE_WEBHOOK,
    responses={201: schemas.ref("WebhookWithSecret")},
)
async def create_webhook(request: web.Request) -> web.Response:
    identity = identity_of(request)
    body = await read_json(request, ws.CREATE_WEBHOOK)
    secret = checked_secret(body["secret"]) if "secret" in body else generate_secret()
    url = await checked_url(request, body["url"])
    webhook = await webhooks.create_webhook(
        request.app[DB],
        identity.user.id,
        url,
        tuple(body.get("events", [ALL_EVENTS])),
        request.app[BOX].encrypt(secret),
        active=body.get("active", True),
    )
    return web.json_response({**webhook.public(), "secret": secret}, status=201)


@routes.get("/api/v1/webhooks/{id}", allow_head=False)
@operation("Get a webhook (never its secret)", tag="webhooks", responses={200: WEBHOOK})
async def get_webhook(request: web.Request) -> web.Response:
    return web.json_response((await webhook_of(request)).public())


@routes.put("/api/v1/webhooks/{id}")
@operation(
    "Change a webhook's url, events, secret or active flag (the fields given)",
    tag="webhooks",
    body=ws.UPDATE_WEBHOOK,
    responses={200: WEBHOOK},
)
async def update_webhook(request: web.Request) -> web.Response:
    webhook = await webhook_of(request)
    body = await read_json(request, ws.UPDATE_WEBHOOK)
    secret = checked_secret(body["secret"]) if "secret" in body else None
    url = await checked_url(request, body["url"]) if "url" in body else None
    change = WebhookChange(
        url=url,
        events=tuple(body["events"]) if "events" in body else None,
        secret_enc=None if secret is None else request.app[BOX].encrypt(secret),
        active=body.get("active"),
    )
    updated = await webhooks.update_webhook(request.app[DB], webhook.id, change)
    return web.json_response(updated.public())


@routes.delete("/api/v1/webhooks/{id}")
@operation("Delete a webhook and its delivery log", tag="webhooks", responses={204: None})
async def delete_webhook(request: web.Request) -> web.Response:
    webhook = await webhook_of(request)
    await webhooks.delete_webhook(request.app[DB], webhook.id)
    return web.Response(status=204)
