"""Health and info: no auth, never rate-limited (except /api/v1/info and the OpenAPI document)."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from dployr import __version__
from dployr.api import schemas
from dployr.api.openapi import build_document, operation
from dployr.errors import Unavailable
from dployr.keys import CONFIG, DB, STARTED_AT
from dployr.proxy.detect import proxy_problem, resolve_backend
from dployr.runtime.detect import available_targets, default_target, runtime_problem

routes = web.RouteTableDef()
OPENAPI_PATH = "/api/v1/openapi.json"


@routes.get("/health", allow_head=False)
@operation("Daemon health", tag="health", public=True, responses={200: schemas.ref("Health")})
async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "version": __version__, "uptime": _uptime(request)})


def _uptime(request: web.Request) -> float:
    return round(time.monotonic() - request.app[STARTED_AT], 3)


@routes.get("/health/live", allow_head=False)
@operation(
    "Liveness: 200 while the event loop runs",
    tag="health",
    public=True,
    responses={200: schemas.ref("Health")},
)
async def live(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "version": __version__, "uptime": _uptime(request)})


@routes.get("/health/ready", allow_head=False)
@operation(
    "Readiness: database, runtime and proxy answer",
    tag="health",
    public=True,
    responses={200: schemas.ref("Ready"), 503: schemas.ref("Error")},
)
async def ready(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    database, runtime, proxy = await asyncio.gather(
        _database_problem(request), runtime_problem(config.runtime), proxy_problem(config.proxy)
    )
    checks = {"database": database or "ok", "runtime": runtime or "ok", "proxy": proxy or "ok"}
    if database or runtime or proxy:
        raise Unavailable(
            "Not ready: " + "; ".join(p for p in (database, runtime, proxy) if p), details=checks
        )
    return web.json_response({"status": "ok", "checks": checks})


async def _database_problem(request: web.Request) -> str | None:
    try:
        await request.app[DB].ping()
    except Exception as err:
        return f"database does not answer: {type(err).__name__}"
    return None


@routes.get("/api/v1/info", allow_head=False)
@operation(
    "Version, runtime targets, proxy backend",
    tag="health",
    public=True,
    responses={200: schemas.ref("Info")},
)
async def info(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    targets, target, proxy = await asyncio.gather(
        available_targets(config.runtime),
        default_target(config.runtime),
        resolve_backend(config.proxy),
    )
    return web.json_response(
        {
            "name": "dployr",
            "version": __version__,
            "targets": targets,
            "default_target": target if target in targets else None,
            "proxy": proxy,
            "docs_url": OPENAPI_PATH,
            "registration": config.auth.registration,
        }
    )


@routes.get(OPENAPI_PATH, allow_head=False)
@operation(
    "This OpenAPI 3.1 document", tag="health", public=True, responses={200: schemas.ref("OpenAPI")}
)
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(build_document(request.app))
