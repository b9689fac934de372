"""/instances: this host as the one instance, and its metrics (SPEC §6)."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any, Protocol

from aiohttp import web

from dployr import __version__
from dployr.api.metrics_schemas import ref
from dployr.api.openapi import PAGING, operation, query_param
from dployr.api.validation import page_request, query_int
from dployr.errors import NotFound
from dployr.keys import CONFIG, DB, DEPLOYER, HOST_METRICS
from dployr.metrics.query import Plan, iso, parse_time, plan_query
from dployr.metrics.recorder import HostRecorder
from dployr.runtime.detect import docker_version
from dployr.store import metrics as store

routes = web.RouteTableDef()


# The series window of /instances/{id}/metrics and /services/{id}/metrics.
WINDOW_QUERY = (
    query_param("from", {"type": "string"}, "ISO 8601 or unix seconds; default to - 1 h"),
    query_param("to", {"type": "string"}, "ISO 8601 or unix seconds; default now"),
    query_param("step", {"type": "integer", "minimum": 1}, "seconds a point"),
)


class Recorder(Protocol):
    interval: int

    def now(self) -> int: ...

    async def flush(self) -> None: ...


async def read_window(request: web.Request, recorder: Recorder) -> tuple[int, int, Plan]:
    """The window asked for (from, to, step), with the buffered samples written first: they
    are part of the answer."""
    now = recorder.now()
    end = parse_time("to", request.query.get("to"), now)
    start = parse_time("from", request.query.get("from"), end - 3600)
    step = query_int(request, "step", None, minimum=1)
    plan = plan_query(now, start, end, step, recorder.interval)
    await recorder.flush()
    return start, end, plan


def sample_json(sample: Any) -> dict[str, Any]:
    """A host or service sample (a dataclass with `ts`) as JSON."""
    fields = asdict(sample)
    return {"timestamp": iso(fields.pop("ts")), **fields}


async def instance_json(request: web.Request) -> dict[str, Any]:
    recorder = request.app[HOST_METRICS]
    if recorder.facts is None:
        await recorder.start()
    facts = recorder.facts
    assert facts is not None
    deployer = request.app.get(DEPLOYER)
    return {
        "id": recorder.instance_id,
        "hostname": facts.hostname,
        "os": facts.os,
        "kernel": facts.kernel,
        "cpu_count": facts.cpu_count,
        "memory_total": facts.memory_total,
        "disk_total": facts.disk_total,
        "uptime": round(time.time() - facts.boot_time, 1),
        "agent_version": __version__,
        "docker_version": await docker_version(request.app[CONFIG].runtime),
        "proxy": None if deployer is None else deployer.router.proxy.name,
        "status": "online",
    }


def _recorder(request: web.Request) -> HostRecorder:
    recorder = request.app[HOST_METRICS]
    if request.match_info["instance_id"] != recorder.instance_id:
        raise NotFound("No such instance")
    return recorder


@routes.get("/api/v1/instances", allow_head=False)
@operation(
    "The instances: this host", tag="instances", query=PAGING, responses={200: ref("InstancePage")}
)
async def list_instances(request: web.Request) -> web.Response:
    page = page_request(request)
    items = [await instance_json(request)] if page.page == 1 else []
    return web.json_response(
        {"items": items, "page": page.page, "per_page": page.per_page, "total": 1, "total_pages": 1}
    )


@routes.get("/api/v1/instances/{instance_id}", allow_head=False)
@operation("One instance", tag="instances", responses={200: ref("Instance"), 404: ref("Error")})
async def get_instance(request: web.Request) -> web.Response:
    _recorder(request)
    return web.json_response(await instance_json(request))


@routes.get("/api/v1/instances/{instance_id}/metrics", allow_head=False)
@operation(
    "Host metrics: the newest sample and a series",
    tag="instances",
    query=WINDOW_QUERY,
    responses={200: ref("InstanceMetrics"), 400: ref("Error"), 404: ref("Error")},
)
async def instance_metrics(request: web.Request) -> web.Response:
    recorder = _recorder(request)
    start, end, plan = await read_window(request, recorder)
    series = await store.series(request.app[DB], plan.resolution, start, end, plan.step)
    current = await recorder.current()
    return web.json_response(
        {
            "current": None if current is None else sample_json(current),
            "series": [sample_json(s) for s in series],
            "from": iso(start),
            "to": iso(end),
            "step": plan.step,
        }
    )
