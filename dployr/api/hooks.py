"""/hooks/{id}/push: git push hooks from GitHub and GitLab (public; the signature is the auth)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dployr.api import schemas
from dployr.api.deployments import deployment_json
from dployr.api.middleware import client_of
from dployr.api.openapi import operation
from dployr.errors import AuthenticationRequired
from dployr.keys import CONFIG, DB, DEPLOYER, EXTRA_QUOTA, RATE_LIMITS
from dployr.pipeline.deployer import redeploy
from dployr.pipeline.push import Push, read_push, verify
from dployr.store import deployments, services

routes = web.RouteTableDef()
RESULT = schemas.ref("PushResult")


def _ignored(reason: str) -> web.Response:
    return web.json_response({"status": "ignored", "reason": reason}, status=202)


@routes.post("/api/v1/hooks/{id}/push")
@operation(
    "A git push hook (GitHub X-Hub-Signature-256 or GitLab X-Gitlab-Token): a push to the "
    "service's branch queues a deployment of that commit (202); other pushes are ignored (202)",
    tag="hooks",
    body={"type": "object", "description": "the GitHub or GitLab push event, as sent"},
    responses={200: RESULT, 202: RESULT},
    public=True,
)
async def push_hook(request: web.Request) -> web.Response:
    body = await request.read()  # over client_max_size: 413 before anything is verified
    db, deployer = request.app[DB], request.app[DEPLOYER]
    service = await services.get_service(db, request.match_info["id"], None)
    secret = deployer.box.decrypt(service.hook_secret_enc) if service else None
    if service is None or not verify(request.headers, body, secret):
        # Only failures count against the caller's address (the anonymous budget): a sender
        # that has the secret is never throttled, and a guesser is, service or no service.
        if request.app[CONFIG].rate_limit.enabled:
            key = client_of(request).key
            request[EXTRA_QUOTA] = request.app[RATE_LIMITS].anonymous.hit(key)
        raise AuthenticationRequired(
            "The hook is not signed with this service's hook secret: send X-Hub-Signature-256 "
            "(GitHub) or X-Gitlab-Token (GitLab)"
        )
    push = read_push(request.headers, request.content_type, body)
    if push.event == "ping":
        return web.json_response({"status": "pong", "service_id": service.id})
    return await _deploy(request, service, push)


async def _deploy(request: web.Request, service: services.Service, push: Push) -> web.Response:
    if push.event != "push":
        return _ignored(f"event {push.event!r} is not a push")
    if service.auto_deploy == "off":
        return _ignored("auto_deploy is off for this service")
    latest = await deployments.latest_deployment(request.app[DB], service.id)
    if latest is None:
        return _ignored("the service has no deployment to take its config from")
    spec = latest.spec
    if spec["source"] not in ("remote", "local"):
        return _ignored(f"the service's source is {spec['source']}, not a git repository")
    branch = spec.get("branch") or "main"
    if push.ref != f"refs/heads/{branch}":
        return _ignored(f"push to {push.ref}; this service deploys refs/heads/{branch}")
    if push.commit is None:
        return _ignored(f"branch {branch} was deleted")
    new = redeploy(service, spec, "webhook", push.commit)
    deployment, coalesced = await request.app[DEPLOYER].queue_push(new)
    result: dict[str, Any] = {
        "status": "queued",
        "coalesced": coalesced,
        "deployment": deployment_json(deployment),
    }
    return web.json_response(result, status=202)
