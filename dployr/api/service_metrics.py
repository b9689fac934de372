"""GET /services/{id}/metrics: a service's usage, the newest sample and a series (SPEC §6)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aiohttp import web

from dployr.api.metrics_schemas import ref
from dployr.api.openapi import operation, query_param
from dployr.api.services import service_of
from dployr.api.validation import query_int
from dployr.keys import DB, SERVICE_METRICS
from dployr.metrics.query import iso, parse_time, plan_query
from dployr.store import service_metrics as store
from dployr.store.service_metrics import ServiceSample

routes = web.RouteTableDef()


def sample_json(sample: ServiceSample) -> dict[str, Any]:
    fields = asdict(sample)
    return {"timestamp": iso(fields.pop("ts")), **fields}


@routes.get("/api/v1/services/{id}/metrics", allow_head=False)
@operation(
    "A service's usage (its live instance): the newest sample and a series",
    tag="services",
    query=(
        query_param("from", {"type": "string"}, "ISO 8601 or unix seconds; default to - 1 h"),
        query_param("to", {"type": "string"}, "ISO 8601 or unix seconds; default now"),
        query_param("step", {"type": "integer", "minimum": 1}, "seconds a point"),
    ),
    responses={200: ref("ServiceMetrics"), 400: ref("Error"), 404: ref("Error")},
)
async def service_metrics(request: web.Request) -> web.Response:
    service = await service_of(request)  # another user's service is a 404
    recorder = request.app[SERVICE_METRICS]
    now = recorder.now()
    end = parse_time("to", request.query.get("to"), now)
    start = parse_time("from", request.query.get("from"), end - 3600)
    step = query_int(request, "step", None, minimum=1)
    plan = plan_query(now, start, end, step, recorder.interval)
    await recorder.flush()  # the buffered samples are part of the answer
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
