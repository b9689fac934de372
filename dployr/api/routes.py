"""/proxy/routes: the route table (SPEC §5) — list, create, get, delete."""

from __future__ import annotations

from aiohttp import web

from dployr.api import schemas
from dployr.api.openapi import PAGING, operation, query_param
from dployr.api.projects import owner_filter
from dployr.api.users import identity_of
from dployr.api.validation import page_json, page_request, query_text, read_json
from dployr.errors import NotFound
from dployr.keys import DB, DEPLOYER
from dployr.pipeline import route_table
from dployr.proxy.domains import check_path_prefix, normalize_domain
from dployr.store import routes as stored
from dployr.store import services
from dployr.store.routes import RouteRecord

routes = web.RouteTableDef()
ROUTE = schemas.ref("Route")


async def route_of(request: web.Request) -> RouteRecord:
    """The route in the path, if the caller owns its service; another user's is a 404."""
    record = await stored.get_route(
        request.app[DB], request.match_info["id"], owner_filter(identity_of(request))
    )
    if record is None:
        raise NotFound("No such route")
    return record


@routes.get("/api/v1/proxy/routes", allow_head=False)
@operation(
    "List routes (of your services; an admin sees all), newest first",
    tag="routes",
    responses={200: schemas.ref("RoutePage")},
    query=(*PAGING, query_param("service_id", {"type": "string"})),
)
async def list_routes(request: web.Request) -> web.Response:
    page = await stored.list_routes(
        request.app[DB],
        page_request(request),
        owner_filter(identity_of(request)),
        service_id=query_text(request, "service_id"),
    )
    return web.json_response(page_json(page, [r.public() for r in page.items]))


@routes.post("/api/v1/proxy/routes")
@operation(
    "Route a domain (and path prefix) to a service; the proxy takes it before it is stored",
    tag="routes",
    body=schemas.CREATE_ROUTE,
    responses={201: ROUTE},
)
async def create_route(request: web.Request) -> web.Response:
    body = await read_json(request, schemas.CREATE_ROUTE)
    domain = normalize_domain(body["domain"])
    path_prefix = check_path_prefix(body.get("path_prefix", "/"))
    service = await services.get_service(
        request.app[DB], body["service_id"], owner_filter(identity_of(request))
    )
    if service is None:
        raise NotFound("No such service", details={"field": "service_id"})
    record = await route_table.create_route(
        request.app[DEPLOYER], service, domain, path_prefix, body.get("tls"), body.get("port")
    )
    return web.json_response(record.public(), status=201)


@routes.get("/api/v1/proxy/routes/{id}", allow_head=False)
@operation("Get a route", tag="routes", responses={200: ROUTE})
async def get_route(request: web.Request) -> web.Response:
    return web.json_response((await route_of(request)).public())


@routes.delete("/api/v1/proxy/routes/{id}")
@operation(
    "Delete a route; the proxy stops serving it before it is removed",
    tag="routes",
    responses={204: None},
)
async def delete_route(request: web.Request) -> web.Response:
    await route_table.delete_route(request.app[DEPLOYER], await route_of(request))
    return web.Response(status=204)
