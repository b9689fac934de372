"""/services: list, get, live status, start/stop/restart, logs, delete."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web

from dployr.api import deploy_schemas as ds
from dployr.api import schemas
from dployr.api.middleware import public_scheme
from dployr.api.openapi import PAGING, operation, query_param
from dployr.api.projects import owner_filter
from dployr.api.streams import LineStream, until_gone
from dployr.api.users import identity_of
from dployr.api.validation import (
    page_json,
    page_request,
    query_bool,
    query_int,
    query_text,
    read_json,
)
from dployr.crypto import mask_secrets
from dployr.errors import Conflict, NotFound, ValidationError
from dployr.ids import parse_iso
from dployr.keys import DB, DEPLOYER, FOLLOWS
from dployr.pipeline import control, scale
from dployr.runtime.protocol import InstanceStatus, LogLine, RuntimeFailure, Target
from dployr.store import services, volumes
from dployr.store.routes import RouteRecord, routes_of_service, routes_of_services
from dployr.store.services import Service

routes = web.RouteTableDef()
SERVICE = schemas.ref("Service")
STATUS = schemas.ref("ServiceRuntimeStatus")
MAX_TAIL = 10_000
MAX_LOG_BYTES = 1_048_576  # of messages in one non-follow answer; the rest is not read


async def service_of(request: web.Request) -> Service:
    service = await services.get_service(
        request.app[DB], request.match_info["id"], owner_filter(identity_of(request))
    )
    if service is None:
        raise NotFound("No such service")
    return service


def status_json(status: InstanceStatus, host_port: int | None) -> dict[str, Any]:
    return {
        "status": status.status,
        "host_port": host_port if status.ref else None,
        "container_id": status.ref,
        "started_at": status.started_at,
        "restarts": status.restarts,
        "health": status.health,
        "replicas": task_counts(status.replicas),
    }


def task_counts(replicas: tuple[int, int] | None) -> dict[str, int] | None:
    return None if replicas is None else {"running": replicas[0], "desired": replicas[1]}


async def service_json(
    request: web.Request,
    service: Service,
    routed: list[RouteRecord] | None = None,
    stored: list[volumes.Volume] | None = None,
) -> dict[str, Any]:
    """The service object; `routed` and `stored`: its routes and volumes when the caller read
    them already (a list reads every listed service's in one query), else they are read here."""
    deployer = request.app[DEPLOYER]
    if routed is None:
        routed = await routes_of_service(request.app[DB], service.id)
    if stored is None:
        stored = await volumes.of_service(request.app[DB], service.id)
    live = await control.live_deployment(deployer, service)
    status, host_port = await control.service_status(deployer, service)
    return {
        "id": service.id,
        "owner_id": service.owner_id,
        "project_id": service.project_id,
        "name": service.name,
        "runtime": service.runtime,
        "target": service.target,
        "status": status.status,
        "desired_state": service.desired_state,
        "auto_deploy": service.auto_deploy,
        "current_deployment_id": service.current_deployment_id,
        "current_deployment": None
        if live is None
        else {
            "id": live.id,
            "number": live.number,
            "commit_sha": live.commit_sha,
            "status": live.status,
        },
        "host_port": host_port if status.ref else None,
        "container_id": status.ref,
        "routes": [record.on_service() for record in routed],
        "volumes": [{"name": v.name, "path": v.path} for v in stored],
        # swarm: the count it is scaled to (1 until a release or `scale` set one); the
        # tasks that run are its status's
        "replicas": (service.replicas or 1) if service.target == "swarm" else None,
        "hook_url": f"{public_scheme(request)}://{request.host}/api/v1/hooks/{service.id}/push",
        "hook_secret": deployer.box.decrypt(service.hook_secret_enc),
        "created_at": service.created_at,
        "updated_at": service.updated_at,
    }


@routes.get("/api/v1/services", allow_head=False)
@operation(
    "List services, newest first",
    tag="services",
    responses={200: schemas.ref("ServicePage")},
    query=(
        *PAGING,
        query_param("search", {"type": "string"}, "substring of the name"),
        query_param("project_id", {"type": "string"}),
    ),
)
async def list_services(request: web.Request) -> web.Response:
    page = await services.list_services(
        request.app[DB],
        page_request(request),
        owner_filter(identity_of(request)),
        project_id=query_text(request, "project_id"),
        search=query_text(request, "search"),
    )
    ids = [s.id for s in page.items]
    routed = await routes_of_services(request.app[DB], ids)
    stored = await volumes.of_services(request.app[DB], ids)
    items = await asyncio.gather(
        *(service_json(request, s, routed[s.id], stored[s.id]) for s in page.items)
    )
    return web.json_response(page_json(page, list(items)))


@routes.get("/api/v1/services/{id}", allow_head=False)
@operation(
    "Get a service with its live release and status", tag="services", responses={200: SERVICE}
)
async def get_service(request: web.Request) -> web.Response:
    return web.json_response(await service_json(request, await service_of(request)))


@routes.get("/api/v1/services/{id}/status", allow_head=False)
@operation(
    "The live instance's status, read from the runtime", tag="services", responses={200: STATUS}
)
async def get_status(request: web.Request) -> web.Response:
    service = await service_of(request)
    status, host_port = await control.service_status(request.app[DEPLOYER], service)
    return web.json_response(status_json(status, host_port))


async def _after(request: web.Request, service: Service) -> web.Response:
    fresh = await services.get_service(request.app[DB], service.id, None)
    assert fresh is not None
    status, host_port = await control.service_status(request.app[DEPLOYER], fresh)
    return web.json_response(status_json(status, host_port))


@routes.post("/api/v1/services/{id}/start")
@operation("Start a stopped service (409 when running)", tag="services", responses={200: STATUS})
async def start_service(request: web.Request) -> web.Response:
    service = await service_of(request)
    await control.start_service(request.app[DEPLOYER], service)
    return await _after(request, service)


@routes.post("/api/v1/services/{id}/stop")
@operation("Stop a running service (409 when stopped)", tag="services", responses={200: STATUS})
async def stop_service(request: web.Request) -> web.Response:
    service = await service_of(request)
    await control.stop_service(request.app[DEPLOYER], service)
    return await _after(request, service)


@routes.post("/api/v1/services/{id}/restart")
@operation(
    "Restart a service with its current env (a new container of the live release)",
    tag="services",
    responses={200: STATUS},
)
async def restart_service(request: web.Request) -> web.Response:
    service = await service_of(request)
    await control.restart_service(request.app[DEPLOYER], service)
    return await _after(request, service)


@routes.post("/api/v1/services/{id}/scale")
@operation(
    "Run this many tasks of a swarm service's live release, without a new release",
    tag="services",
    body=ds.SCALE_SERVICE,
    responses={200: STATUS},
)
async def scale_service(request: web.Request) -> web.Response:
    service = await service_of(request)
    body = await read_json(request, ds.SCALE_SERVICE)
    await scale.scale_service(request.app[DEPLOYER], service, body["replicas"])
    return await _after(request, service)


@routes.delete("/api/v1/services/{id}")
@operation(
    "Delete a service: its containers, images, routes, cache, history and volumes "
    "(?keep_volumes=true keeps the volumes for a later service of the same name)",
    tag="services",
    responses={204: None},
    query=(query_param("keep_volumes", {"type": "boolean"}),),
)
async def delete_service(request: web.Request) -> web.Response:
    keep_volumes = query_bool(request, "keep_volumes")
    service = await service_of(request)
    await control.delete_service(request.app[DEPLOYER], service, keep_volumes=keep_volumes)
    return web.Response(status=204)


@routes.get("/api/v1/services/{id}/volumes", allow_head=False)
@operation(
    "The service's volumes with the bytes each holds now",
    tag="services",
    responses={200: schemas.ref("VolumeList")},
)
async def list_volumes(request: web.Request) -> web.Response:
    service = await service_of(request)
    items = await control.volume_usage(request.app[DEPLOYER], service)
    return web.json_response({"items": items})


def _tail(request: web.Request) -> int:
    tail = query_int(request, "tail", 100, minimum=0, maximum=MAX_TAIL)
    assert tail is not None
    return tail


def _since(request: web.Request) -> str | None:
    raw = request.query.get("since")
    if raw is None:
        return None
    try:
        parse_iso(raw)
    except ValueError:
        raise ValidationError("since", "must be an ISO 8601 timestamp") from None
    return raw


async def _read_logs(
    target: Target | None,
    ref: str | None,
    tail: int,
    since: str | None,
    entry: Callable[[LogLine], dict[str, str]],
) -> tuple[list[dict[str, str]], bool]:
    """The last `tail` + 1 lines (the extra one tells whether there are more), read until
    MAX_LOG_BYTES of messages: then (the lines so far, True) and the engine is read no more."""
    lines: list[dict[str, str]] = []
    if not ref or target is None:
        return lines, False
    size = 0
    source = target.logs(ref, tail=tail + 1, since=since, follow=False)
    try:
        async for line in source:
            item = entry(line)
            size += len(item["message"].encode("utf-8")) + 1
            if size > MAX_LOG_BYTES and lines:
                return lines, True
            lines.append(item)
    except RuntimeFailure:
        return [], False
    finally:
        aclose = getattr(source, "aclose", None)  # a generator: closes the engine connection
        if aclose is not None:
            await aclose()
    return lines, False


@routes.get("/api/v1/services/{id}/logs", allow_head=False)
@operation(
    "The live instance's output; ?follow=true streams NDJSON (SSE for text/event-stream)",
    tag="services",
    responses={200: schemas.ref("ServiceLogs")},
    query=(
        query_param("tail", {"type": "integer", "minimum": 0}, "lines from the end (100)"),
        query_param("since", {"type": "string", "format": "date-time"}),
        query_param("follow", {"type": "boolean"}),
    ),
    streams=("application/x-ndjson", "text/event-stream"),
)
async def service_logs(request: web.Request) -> web.StreamResponse:
    service = await service_of(request)
    tail, since, follow = _tail(request), _since(request), query_bool(request, "follow")
    deployer = request.app[DEPLOYER]
    live = await control.live_deployment(deployer, service)
    ref = live.instance_ref if live else None
    target = deployer.target_of(live) if live else None
    secrets = services.open_snapshot(live.env_enc, deployer.box)[1] if live else []

    def entry(line: LogLine) -> dict[str, str]:
        message = mask_secrets(line.message, secrets)
        return {"timestamp": line.timestamp, "stream": line.stream, "message": message}

    if not follow:
        lines, truncated = await _read_logs(target, ref, tail, since, entry)
        has_more = truncated or len(lines) > tail
        return web.json_response(
            {
                "service_id": service.id,
                "logs": lines if truncated else lines[-tail:] if tail else [],
                "has_more": has_more,
                "truncated": truncated,
            }
        )
    with request.app[FOLLOWS].hold(identity_of(request).user.id):
        async with LineStream(request) as stream:
            if ref and target is not None:
                source = target.logs(ref, tail=tail, since=since, follow=True)
                async for line in until_gone(request, source):
                    await stream.send(entry(line))
    return stream.response


# -- env ------------------------------------------------------------------------------------------


@routes.get("/api/v1/services/{id}/env", allow_head=False)
@operation(
    "The service's variables (secret values masked)",
    tag="env",
    responses={200: schemas.ref("EnvList")},
)
async def list_env(request: web.Request) -> web.Response:
    service = await service_of(request)
    env = await services.read_env(request.app[DB], service.id, request.app[DEPLOYER].box)
    return web.json_response({"service_id": service.id, "env": [v.public() for v in env]})


@routes.post("/api/v1/services/{id}/env")
@operation(
    "Set a variable (upsert); applied at the next deploy or restart, ?apply=true restarts now",
    tag="env",
    body=ds.SET_ENV,
    responses={200: schemas.ref("EnvVar")},
    query=(query_param("apply", {"type": "boolean"}),),
)
async def set_env(request: web.Request) -> web.Response:
    service = await service_of(request)
    body = await read_json(request, ds.SET_ENV)
    apply = query_bool(request, "apply")
    deployer = request.app[DEPLOYER]
    async with request.app[DB].transaction() as conn:
        if (database_id := await services.linked_env(conn, service.id, body["key"])) is not None:
            raise Conflict(
                f"{body['key']} is set by the link of database {database_id}; unlink it "
                "(DELETE /api/v1/databases/{id}/links/{service_id}) or choose another key",
                details={"field": "key", "reason": "set by a database link"},
            )
        var = await services.upsert_env(
            conn, service.id, body["key"], body["value"], body.get("secret"), deployer.box
        )
    if apply and service.current_deployment_id:
        await control.restart_service(deployer, service)
    return web.json_response(var.public())


@routes.delete("/api/v1/services/{id}/env/{key}")
@operation("Remove a variable", tag="env", responses={204: None})
async def delete_env(request: web.Request) -> web.Response:
    service = await service_of(request)
    if not await services.delete_env(request.app[DB], service.id, request.match_info["key"]):
        raise NotFound("No such variable")
    return web.Response(status=204)
