"""GET /metrics: Prometheus text format, for loopback clients or a token (SPEC §6, §13)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from dployr.api import schemas
from dployr.api.middleware import client_of
from dployr.api.openapi import operation
from dployr.auth.clients import parse_address
from dployr.errors import AuthenticationRequired, NotFound
from dployr.keys import AGENT_COUNTERS, AUTH, BUS, CONFIG, HOST_METRICS, SERVICE_METRICS
from dployr.metrics.prometheus import Snapshot, render

routes = web.RouteTableDef()


@routes.get("/metrics", allow_head=False)
@operation(
    "Prometheus metrics: loopback clients, or any valid token (never rate-limited)",
    tag="health",
    public=True,  # checked here: loopback needs no token
    responses={200: {"type": "string"}, 401: schemas.ref("Error"), 404: schemas.ref("Error")},
    streams=("text/plain",),
)
async def prometheus_metrics(request: web.Request) -> web.Response:
    if not request.app[CONFIG].metrics.prometheus:
        raise NotFound(f"No such path: {request.path}")
    # The client after server.trusted_proxies: through proxy.api_domain it is the remote one.
    address = parse_address(client_of(request).address)
    if address is None or not address.is_loopback:
        identity = await request.app[AUTH].authenticate(request.headers.get("Authorization"))
        if identity is None:
            raise AuthenticationRequired()
    recorder = request.app[HOST_METRICS]
    snapshot = Snapshot.take(
        recorder.newest,
        request.app[AGENT_COUNTERS],
        request.app[BUS].dropped,
        request.app[SERVICE_METRICS].newest.values(),
    )
    body, content_type = await asyncio.to_thread(render, snapshot)
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response
