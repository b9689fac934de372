"""Health and info: no auth, never rate-limited (except /api/v1/info and the OpenAPI document)."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from dployr import __version__
from dployr.api import schemas
from dployr.api.openapi import build_document, operation
from dployr.errors import Unavailable
from dployr.keys import CONFIG, DB, DEPLOYER, STARTED_AT
from dployr.proxy.protocol import Proxy
from dployr.store import routes as stored_routes

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
    database, runtime, proxy, (swarm, swarm_fails) = await asyncio.gather(
        _database_problem(request),
        _runtime_problem(request),
        _proxy_problem(request),
        _swarm_check(request),
    )
    checks = {"database": database or "ok", "runtime": runtime or "ok", "proxy": proxy or "ok"}
    checks["swarm"] = swarm
    failing = [p for p in (database, runtime, proxy) if p]
    if swarm_fails:
        failing.append(f"swarm: {swarm}")
    if failing:
        raise Unavailable("Not ready: " + "; ".join(failing), details=checks)
    return web.json_response({"status": "ok", "checks": checks})


async def _database_problem(request: web.Request) -> str | None:
    try:
        await request.app[DB].ping()
    except Exception as err:
        return f"database does not answer: {type(err).__name__}"
    return None


def _proxy(request: web.Request) -> Proxy | None:
    """The proxy the daemon drives (resolved once, at start); None while it starts."""
    deployer = request.app.get(DEPLOYER)
    return None if deployer is None else deployer.router.proxy


async def _runtime_problem(request: web.Request) -> str | None:
    deployer = request.app.get(DEPLOYER)
    if deployer is None:
        return "the targets are not set up yet (the daemon is starting)"
    return await deployer.targets.readiness_problem()


async def _swarm_check(request: web.Request) -> tuple[str, bool]:
    """The swarm target (SPEC §15): "ok", or why it cannot run releases here; and whether that
    makes the daemon not ready: only when swarm services exist (a host that never used the
    swarm target is ready without one), or when the swarm proxy they need does not answer."""
    deployer = request.app.get(DEPLOYER)
    if deployer is None:
        return "the targets are not set up yet (the daemon is starting)", False
    problem = await deployer.targets.get("swarm").problem()
    if problem is None:
        overlay = deployer.router.swarm
        proxy = None if overlay is None else await overlay.problem()
        return ("ok", False) if proxy is None else (f"the swarm proxy: {proxy}", True)
    used = bool(await stored_routes.swarm_services(deployer.db))
    return f"not available: {problem}", used


async def _proxy_problem(request: web.Request) -> str | None:
    proxy = _proxy(request)
    if proxy is None:
        return "the proxy is not set up yet (the daemon is starting)"
    return await proxy.problem()


# What `proxy_https` says, for people reading /api/v1/info.
HTTPS_MEANS = {
    "automatic": "tls: auto routes get certificates from Caddy's automatic HTTPS (ACME) on "
    "proxy.https_port",
    "internal": "tls: auto routes get certificates from Caddy's local CA "
    "(proxy.tls_issuer = internal): clients must trust that CA",
    "certificates": "nginx: tls: auto routes are served over HTTPS only where a certificate "
    "is present, otherwise over plain HTTP on proxy.http_port",
    "off": "no proxy (backend none): routes are kept, nothing serves them; apps answer on "
    "their published ports only",
}


@routes.get("/api/v1/info", allow_head=False)
@operation(
    "Version, runtime targets, proxy backend",
    tag="health",
    public=True,
    responses={200: schemas.ref("Info")},
)
async def info(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    deployer = request.app.get(DEPLOYER)
    targets: list[str] = []
    target = None
    if deployer is not None:
        targets, target = await asyncio.gather(
            deployer.targets.available(), deployer.targets.default()
        )
    proxy = _proxy(request)
    https = None if proxy is None else proxy.https()
    return web.json_response(
        {
            "name": "dployr",
            "version": __version__,
            "targets": targets,
            "default_target": target if target in targets else None,
            "proxy": None if proxy is None else proxy.name,
            "proxy_https": https,
            "proxy_https_means": HTTPS_MEANS.get(https or "", "the proxy is not set up yet"),
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
