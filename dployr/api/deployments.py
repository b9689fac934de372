"""/deployments: create (202, runs in the background), list, get, change, cancel, rollback, logs."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from dployr.api import deploy_schemas as ds
from dployr.api import schemas
from dployr.api.openapi import PAGING, operation, query_param
from dployr.api.projects import owner_filter, project_of
from dployr.api.streams import LineStream, client_gone
from dployr.api.users import identity_of
from dployr.api.validation import (
    page_json,
    page_request,
    query_bool,
    query_choice,
    query_int,
    read_json,
)
from dployr.errors import InvalidState, NotFound, ValidationError
from dployr.keys import CONFIG, DB, DEPLOYER, FOLLOWS
from dployr.pipeline import releases, route_table
from dployr.pipeline.deployer import EnvChange
from dployr.pipeline.spec import DeploySpec, check_local_allowed, spec_from_body
from dployr.pipeline.uploads import same_upload
from dployr.runtime.reference import DEFAULT_DOMAIN, parse_image
from dployr.runtime.targets import check_admin
from dployr.store import credentials, deployments, projects, services, volumes
from dployr.store.db import Database
from dployr.store.deployments import FINISHED, STATUSES, Deployment, NewDeployment

routes = web.RouteTableDef()
DEPLOYMENT = schemas.ref("Deployment")
FOLLOW_POLL = 0.3
LOG_PAGE = 1000
MAX_LOG_PAGE = 5000
LOG_PAGE_BYTES = 1_048_576  # a page is at most this (plus one line): small to serialise


def deployment_json(deployment: Deployment) -> dict[str, Any]:
    spec = deployment.spec
    return {
        "id": deployment.id,
        "service_id": deployment.service_id,
        "service_name": deployment.service_name,
        "project_id": deployment.project_id,
        "number": deployment.number,
        "status": deployment.status,
        "progress": deployment.progress,
        **{k: spec.get(k) for k in ("source", "remote", "branch", "path", "image")},
        "credential_id": spec.get("credential_id"),
        **{k: spec.get(k) for k in ("runtime", "version", "target", "build_cmd", "run_cmd")},
        "port": spec.get("port"),  # null: a worker
        "env": deployment.env_public,
        "health_check": spec["health_check"],
        "resources": spec["resources"],
        "domain": spec.get("domain"),
        "volumes": spec.get("volumes", []),
        "strategy": spec.get("strategy", "start-first"),
        "replicas": spec.get("replicas"),
        "placement": spec.get("placement", []),
        "commit_sha": deployment.commit_sha,
        "artifact": deployment.artifact,
        "triggered_by": deployment.triggered_by,
        "rollback_of": deployment.rollback_of,
        "error": deployment.error,
        "stages": deployment.stages,
        "host_port": deployment.host_port,
        "created_at": deployment.created_at,
        "started_at": deployment.started_at,
        "finished_at": deployment.finished_at,
    }


async def deployment_of(request: web.Request) -> Deployment:
    deployment = await deployments.get_deployment(
        request.app[DB], request.match_info["id"], owner_filter(identity_of(request))
    )
    if deployment is None:
        raise NotFound("No such deployment")
    return deployment


async def _check_refs(request: web.Request, body: dict[str, Any], owner_id: str) -> None:
    """A project, credential or release image named in the body must be the owner's own (else a
    400, the way another owner's objects are not found)."""
    db = request.app[DB]
    if body.get("image") and not await _may_use_image(db, body["image"], owner_id):
        raise ValidationError(
            "image", "names a dployr release that is not one of your services' releases"
        )
    if (
        body.get("project_id")
        and await projects.get_project(db, body["project_id"], owner_id) is None
    ):
        raise ValidationError("project_id", "no such project")
    if body.get("credential_id"):
        credential = await credentials.get_credential(db, body["credential_id"], owner_id)
        if credential is None:
            raise ValidationError("credential_id", "no such credential")
        if credential.type == "registry":
            raise ValidationError(
                "credential_id",
                "is a registry login (for the swarm target's image pushes); a git source "
                "takes a deploy_key or a token",
            )


async def _may_use_image(db: Database, image: str, owner_id: str) -> bool:
    """Images under `dployr/` are the releases this agent built: only the owner's own services'
    (`dployr/<service id>:<n>`). Any other image on the host is the operator's to share."""
    ref = parse_image(image)
    namespace, _, repo = ref.path.partition("/")
    if ref.domain != DEFAULT_DOMAIN or namespace != "dployr":
        return True
    return "/" not in repo and await services.get_service(db, repo, owner_id) is not None


async def _check_domain(
    request: web.Request, spec: DeploySpec, owner_id: str, service_name: str
) -> None:
    """The route `domain` asks for is made when the release goes live: a domain another
    service holds is a 409 now, not a failed deployment later."""
    if spec.domain is not None:
        await route_table.check_domain_free(
            request.app[DEPLOYER], spec.domain, owner_id=owner_id, service_name=service_name
        )


async def _check_volume_targets(
    request: web.Request, spec: DeploySpec, owner_id: str, service_name: str
) -> None:
    """A volume's data stays on the target it was made on: a release on another target would
    mount it empty (SPEC §14 names no move)."""
    wanted = {v["name"] for v in spec.volumes}
    for volume in await volumes.named(request.app[DB], owner_id, service_name):
        if volume.name in wanted and volume.target != spec.target:
            raise ValidationError(
                "target",
                f"volume {volume.name!r} keeps its data on the {volume.target} target; "
                "volumes do not move between targets (deploy there, or copy the data to a "
                "new service)",
            )


async def _keep_storage(
    db: Database, service_id: str, body: dict[str, Any], target: str
) -> dict[str, Any]:
    """A new release of a service keeps its volumes and strategy unless the body names them:
    its data stays mounted (SPEC §14). A swarm release staying on swarm keeps its placement
    too: its tasks stay on the nodes they were put on (replicas live on the service)."""
    latest = await deployments.latest_deployment(db, service_id)
    if latest is None:
        return body
    names = ["volumes", "strategy"]
    if target == "swarm" and latest.spec.get("target") == "swarm":
        names.append("placement")
    kept: dict[str, Any] = {k: latest.spec[k] for k in names if k in latest.spec}
    return {**kept, **body}


def _env_changes(body: dict[str, Any]) -> list[EnvChange]:
    """`"KEY": "value"` keeps the key's secret flag; `{"value": …, "secret": true}` sets it."""
    return [
        EnvChange(k, v) if isinstance(v, str) else EnvChange(k, v["value"], v.get("secret"))
        for k, v in body.get("env", {}).items()
    ]


@routes.post("/api/v1/deployments")
@operation(
    "Deploy a service (its first deployment creates it); runs in the background",
    tag="deployments",
    body=ds.CREATE_DEPLOYMENT,
    responses={202: DEPLOYMENT},
)
async def create_deployment(request: web.Request) -> web.Response:
    body = await read_json(request, ds.CREATE_DEPLOYMENT)
    new, env = await new_deployment(request, body)
    created = await request.app[DEPLOYER].create(
        new, env, project_given=bool(body.get("project_id"))
    )
    return web.json_response(deployment_json(created), status=202)


async def new_deployment(
    request: web.Request, body: dict[str, Any]
) -> tuple[NewDeployment, list[EnvChange]]:
    """A create body (schema-checked) checked against the caller, the host and the service it
    names: the deployment to record, and the env changes it brings (POST and upload share it)."""
    identity = identity_of(request)
    await _check_refs(request, body, identity.user.id)
    targets = request.app[DEPLOYER].targets
    # A target the body names is checked by spec_from_body, which names the field. With none,
    # a service keeps the one it runs on (`auto` never moves it because an engine is down).
    existing = await services.service_by_name(request.app[DB], identity.user.id, body["name"])
    target = body.get("target")
    if target is None:
        target = existing.target if existing else await targets.default_for_request()
    if existing is not None:
        body = await _keep_storage(request.app[DB], existing.id, body, target)
    spec = await spec_from_body(
        body, request.app[CONFIG], targets, target, admin=identity.user.is_admin
    )
    await _check_volume_targets(request, spec, identity.user.id, body["name"])
    await _check_domain(request, spec, identity.user.id, body["name"])
    new = NewDeployment(
        owner_id=identity.user.id,
        project_id=body.get("project_id") or "",
        name=body["name"],
        runtime=spec.runtime,
        target=spec.target,
        spec=spec.to_json(),
        triggered_by="api",
        auto_deploy=body.get("auto_deploy"),
    )
    return new, _env_changes(body)


@routes.get("/api/v1/deployments", allow_head=False)
@operation(
    "List deployments, newest first",
    tag="deployments",
    responses={200: schemas.ref("DeploymentPage")},
    query=(
        *PAGING,
        query_param("service_id", {"type": "string"}),
        query_param("project_id", {"type": "string"}),
        query_param("status", ds.DEPLOYMENT_STATUS),
    ),
)
async def list_deployments(request: web.Request) -> web.Response:
    return await _list(request, project_id=request.query.get("project_id"))


async def _list(request: web.Request, project_id: str | None) -> web.Response:
    identity = identity_of(request)
    page = await deployments.list_deployments(
        request.app[DB],
        page_request(request),
        owner_filter(identity),
        service_id=request.query.get("service_id"),
        project_id=project_id,
        status=query_choice(request, "status", STATUSES),
    )
    return web.json_response(page_json(page, [deployment_json(d) for d in page.items]))


@routes.get("/api/v1/projects/{id}/deployments", allow_head=False)
@operation(
    "List a project's deployments, newest first",
    tag="deployments",
    responses={200: schemas.ref("DeploymentPage")},
    query=(
        *PAGING,
        query_param("service_id", {"type": "string"}),
        query_param("status", ds.DEPLOYMENT_STATUS),
    ),
)
async def list_project_deployments(request: web.Request) -> web.Response:
    project = await project_of(request)
    return await _list(request, project_id=project.id)


@routes.get("/api/v1/deployments/{id}", allow_head=False)
@operation("Get a deployment with its stages", tag="deployments", responses={200: DEPLOYMENT})
async def get_deployment(request: web.Request) -> web.Response:
    return web.json_response(deployment_json(await deployment_of(request)))


@routes.put("/api/v1/deployments/{id}")
@operation(
    "Change a release's config: a new deployment of the same service (202)",
    tag="deployments",
    body=ds.UPDATE_DEPLOYMENT,
    responses={202: DEPLOYMENT},
)
async def update_deployment(request: web.Request) -> web.Response:
    original = await deployment_of(request)
    body = await read_json(request, ds.UPDATE_DEPLOYMENT)
    await _check_refs(request, body, original.owner_id)
    base = DeploySpec.from_json(original.spec)
    spec = await spec_from_body(
        body,
        request.app[CONFIG],
        request.app[DEPLOYER].targets,
        base.target,
        base=base,
        admin=identity_of(request).user.is_admin,
    )
    await _check_volume_targets(request, spec, original.owner_id, original.service_name)
    await _check_domain(request, spec, original.owner_id, original.service_name)
    new = NewDeployment(
        owner_id=original.owner_id,
        project_id=original.project_id,
        name=original.service_name,
        runtime=spec.runtime,
        target=spec.target,
        spec=spec.to_json(),
        triggered_by="api",
        auto_deploy=body.get("auto_deploy"),
    )
    deployer = request.app[DEPLOYER]
    # An upload's new release is built from the same archive (SPEC §4.1).
    place = await same_upload(deployer, original, required=True)
    created = await deployer.create(new, _env_changes(body), project_given=False, place=place)
    return web.json_response(deployment_json(created), status=202)


@routes.delete("/api/v1/deployments/{id}")
@operation(
    "Cancel a queued or running deployment, or remove a finished one from history",
    tag="deployments",
    responses={204: None},
)
async def delete_deployment(request: web.Request) -> web.Response:
    deployment = await deployment_of(request)
    deployer = request.app[DEPLOYER]
    if deployment.status == "live":
        raise InvalidState("This deployment is live; deploy or roll back to another first")
    if deployment.status in FINISHED:
        await releases.forget_deployment(deployer, deployment)
    else:
        await deployer.cancel(deployment)
    return web.Response(status=204)


@routes.post("/api/v1/deployments/{id}/rollback")
@operation(
    "Redeploy this release's image without rebuilding (202, a new deployment)",
    tag="deployments",
    responses={202: DEPLOYMENT},
)
async def rollback_deployment(request: web.Request) -> web.Response:
    target = await deployment_of(request)
    deployer = request.app[DEPLOYER]
    admin = identity_of(request).user.is_admin
    if target.spec["source"] == "local":
        check_local_allowed(admin)
    check_admin(deployer.target_of(target), admin)
    if target.status not in ("live", "superseded", "rolled_back") or not target.artifact:
        raise InvalidState(
            f"Deployment {target.id} is {target.status}: it has no release to roll back to"
        )
    if not await deployer.target_of(target).has_artifact(target.artifact):
        raise InvalidState(f"The artifact of release {target.number} was pruned (keep_releases)")
    new = NewDeployment(
        owner_id=target.owner_id,
        project_id=target.project_id,
        name=target.service_name,
        runtime=target.spec["runtime"],
        target=target.spec["target"],
        spec=target.spec,
        triggered_by="rollback",
        rollback_of=target.id,
        artifact=target.artifact,
    )
    # It reuses the image; the archive goes along so that a PUT of it can rebuild.
    place = await same_upload(deployer, target, required=False)
    created = await deployer.create(new, [], project_given=False, place=place)
    return web.json_response(deployment_json(created), status=202)


def _log_window(request: web.Request) -> tuple[int, int]:
    """`after` (a seq, 0 for the start) and `limit` (lines a page, capped at MAX_LOG_PAGE)."""
    after = query_int(request, "after", 0, minimum=0, maximum=2**62)
    limit = query_int(request, "limit", LOG_PAGE, minimum=1, maximum=MAX_LOG_PAGE)
    assert after is not None and limit is not None
    return after, limit


@routes.get("/api/v1/deployments/{id}/logs", allow_head=False)
@operation(
    "The build and deploy log, a page at a time (`after`, `limit`); ?follow=true streams "
    "NDJSON (or SSE) until the deployment ends",
    tag="deployments",
    responses={200: schemas.ref("DeploymentLogs")},
    query=(
        query_param("after", {"type": "integer", "minimum": 0}, "lines after this seq (0)"),
        query_param(
            "limit",
            {"type": "integer", "minimum": 1},
            f"lines a page ({LOG_PAGE}, at most "
            f"{MAX_LOG_PAGE}; a page also stops after {LOG_PAGE_BYTES} bytes)",
        ),
        query_param("follow", {"type": "boolean"}),
    ),
    streams=("application/x-ndjson", "text/event-stream"),
)
async def deployment_logs(request: web.Request) -> web.StreamResponse:
    deployment = await deployment_of(request)
    db = request.app[DB]
    after, limit = _log_window(request)
    if not query_bool(request, "follow"):
        lines = await deployments.read_log(
            db, deployment.id, after, limit=limit, max_bytes=LOG_PAGE_BYTES
        )
        next_after = lines[-1][0] if lines else after
        more = await deployments.read_log(db, deployment.id, next_after, limit=1)
        return web.json_response(
            {
                "deployment_id": deployment.id,
                "status": deployment.status,
                "logs": [{"seq": s, "timestamp": t, "message": m} for s, t, m in lines],
                "next_after": next_after,
                "has_more": bool(more),
            }
        )
    with request.app[FOLLOWS].hold(identity_of(request).user.id):
        async with LineStream(request) as stream:
            await _follow_log(request, stream, deployment.id, after, limit)
    return stream.response


async def _follow_log(
    request: web.Request, stream: LineStream, deployment_id: str, after: int, limit: int
) -> None:
    """Lines as they are written, then `{status, end: true}` once the deployment finished."""
    db = request.app[DB]
    while not client_gone(request):
        # Status first, then lines: the log is complete before the status ends it.
        current = await deployments.get_deployment(db, deployment_id, None)
        while page := await deployments.read_log(
            db, deployment_id, after, limit=limit, max_bytes=LOG_PAGE_BYTES
        ):
            for seq, stamp, message in page:
                await stream.send({"seq": seq, "timestamp": stamp, "message": message})
            after = page[-1][0]
        if current is None or current.status in FINISHED:
            await stream.send({"status": current.status if current else "deleted", "end": True})
            return
        await asyncio.sleep(FOLLOW_POLL)
