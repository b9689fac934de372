"""/credentials: deploy keys and tokens for private repositories, logins to an image registry;
the secret is never returned."""

from __future__ import annotations

from aiohttp import web

from dployr.api import catalog_schemas as cs
from dployr.api import schemas
from dployr.api.openapi import PAGING, operation
from dployr.api.projects import owner_filter
from dployr.api.users import identity_of
from dployr.api.validation import page_json, page_request, read_json
from dployr.errors import NotFound, ValidationError
from dployr.keys import BOX, DB
from dployr.store import credentials

routes = web.RouteTableDef()
CREDENTIAL = schemas.ref("Credential")
_KEY_BEGIN = "-----BEGIN "


@routes.get("/api/v1/credentials", allow_head=False)
@operation(
    "List credentials (never their secrets)",
    tag="credentials",
    responses={200: schemas.ref("CredentialPage")},
    query=PAGING,
)
async def list_credentials(request: web.Request) -> web.Response:
    page = await credentials.list_credentials(
        request.app[DB], page_request(request), owner_filter(identity_of(request))
    )
    return web.json_response(page_json(page, [c.public() for c in page.items]))


@routes.post("/api/v1/credentials")
@operation(
    "Store a deploy key ({key}), a token ({token}) or a registry login ({username, password}), "
    "encrypted",
    tag="credentials",
    body=cs.CREATE_CREDENTIAL,
    responses={201: CREDENTIAL},
)
async def create_credential(request: web.Request) -> web.Response:
    identity = identity_of(request)
    body = await read_json(request, cs.CREATE_CREDENTIAL)
    kind, data = body["type"], body["data"]
    fields = cs.CREDENTIAL_FIELDS[kind]
    for name in (*fields, *sorted(set(data) - set(fields))):
        if (name in data) != (name in fields):
            wanted = " and ".join(f"data.{f}" for f in fields)
            raise ValidationError(
                f"data.{name}", f"type {kind} takes {wanted}, each required, and nothing else"
            )
    if kind == "registry":
        secret = credentials.registry_secret(data["username"], data["password"])
    else:
        secret = data[fields[0]]
    if kind == "deploy_key" and (not secret.lstrip().startswith(_KEY_BEGIN) or "\x00" in secret):
        raise ValidationError("data.key", "must be a private key in PEM/OpenSSH form")
    credential = await credentials.create_credential(
        request.app[DB], identity.user.id, kind, body["name"], request.app[BOX].encrypt(secret)
    )
    return web.json_response(credential.public(), status=201)


@routes.delete("/api/v1/credentials/{id}")
@operation("Delete a credential", tag="credentials", responses={204: None})
async def delete_credential(request: web.Request) -> web.Response:
    credential = await credentials.get_credential(
        request.app[DB], request.match_info["id"], owner_filter(identity_of(request))
    )
    if credential is None:
        raise NotFound("No such credential")
    await credentials.delete_credential(request.app[DB], credential.id)
    return web.Response(status=204)
