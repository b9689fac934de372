"""GET /services/{id}/metrics: a service's usage, the newest sample and a series (SPEC §6)."""

from __future__ import annotations

from aiohttp import web

from dployr.api.instances import WINDOW_QUERY, read_window, sample_json
from dployr.api.metrics_schemas import ref
from dployr.api.openapi import operation
from dployr.api.services import service_of
from dployr.keys import DB, SERVICE_METRICS
from dployr.metrics.query import iso
from dployr.store import service_metrics as store

routes = web.RouteTableDef()


@routes.get("/api/v1/services/{id}/metrics", allow_head=False)
@operation(
    "A service's usage (its live instance): the newest sample and a series",
    tag="services",
    query=WINDOW_QUERY,
    responses={200: ref("ServiceMetrics"), 400: ref("Error"), 404: ref("Error")},
)
async def service_metrics(request: web.Request) -> web.Response:
    service = await service_of(request)  # another user's service is a 404
    recorder = request.app[SERVICE_METRICS]
    start, end, plan = await read_window(request, recorder)
    series = await store.series(request.app[DB], service.id, plan.resolution, start, end, plan.step)
    current = await recorder.current(service.id)
    return web.json_response(
        {
            "service_id": service.id,
            "current": None if current is None else sample_json(current),
            "series": [sample_json(s) for s in series],
            "from": iso(start),
            "to": iso(end),
            "step": plan.step,
        }
    )
