"""/templates: the runtime catalog."""

from __future__ import annotations

from aiohttp import web

from dployr.api import schemas
from dployr.api.openapi import operation
from dployr.errors import NotFound
from dployr.keys import CONFIG, DEPLOYER
from dployr.runtime.catalog import CATALOG

routes = web.RouteTableDef()


@routes.get("/api/v1/templates", allow_head=False)
@operation("The runtime catalog", tag="templates", responses={200: schemas.ref("TemplateList")})
async def list_templates(request: web.Request) -> web.Response:
    config, targets = request.app[CONFIG], request.app[DEPLOYER].targets
    return web.json_response({"items": [r.public(config, targets) for r in CATALOG.values()]})


@routes.get("/api/v1/templates/{id}", allow_head=False)
@operation("One runtime of the catalog", tag="templates", responses={200: schemas.ref("Template")})
async def get_template(request: web.Request) -> web.Response:
    runtime = CATALOG.get(request.match_info["id"])
    if runtime is None:
        raise NotFound("No such runtime")
    return web.json_response(runtime.public(request.app[CONFIG], request.app[DEPLOYER].targets))
