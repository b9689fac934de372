"""/projects: named groups of services."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from dployr.api import schemas
from dployr.api.openapi import PAGING, operation, query_param
from dployr.api.users import identity_of
from dployr.api.validation import (
    json_page_response,
    page_request,
    query_bool,
    query_choice,
    query_text,
    read_json,
)
from dployr.auth.service import Identity
from dployr.errors import Conflict, NotFound, ValidationError
from dployr.keys import DB, DEPLOYER
from dployr.pipeline import control
from dployr.store import databases, projects, services
from dployr.store.projects import Project

routes = web.RouteTableDef()
PROJECT = schemas.ref("Project")
MAX_SETTINGS_BYTES = 64 * 1024
STATUSES = ("active", "archived")


def project_json(project: Project) -> dict[str, Any]:
    return {
        "id": project.id,
        "owner_id": project.owner_id,
        "name": project.name,
        "description": project.description,
        "status": project.status,
        "settings": project.settings,
        "created_at": project.created_at,
        "updated_at": project.updated_at,
    }


def owner_filter(identity: Identity) -> str | None:
    """Admins see everyone's objects; others only their own."""
    return None if identity.user.is_admin else identity.user.id


async def project_of(request: web.Request) -> Project:
    """The project in the path, if the caller may see it; another user's is a 404."""
    identity = identity_of(request)
    project = await projects.get_project(
        request.app[DB], request.match_info["id"], owner_filter(identity)
    )
    if project is None:
        raise NotFound("No such project")
    return project


def _check_settings(body: dict[str, Any]) -> None:
    if "settings" in body and len(json.dumps(body["settings"])) > MAX_SETTINGS_BYTES:
        raise ValidationError("settings", f"must be at most {MAX_SETTINGS_BYTES} bytes as JSON")


@routes.get("/api/v1/projects", allow_head=False)
@operation(
    "List projects, newest first",
    tag="projects",
    responses={200: schemas.ref("ProjectPage")},
    query=(
        *PAGING,
        query_param("search", {"type": "string"}, "substring of the name"),
        query_param("status", schemas.PROJECT_STATUS),
    ),
)
async def list_projects(request: web.Request) -> web.Response:
    identity = identity_of(request)
    page = await projects.list_projects(
        request.app[DB],
        page_request(request),
        owner_filter(identity),
        search=query_text(request, "search"),
        status=query_choice(request, "status", STATUSES),
    )
    return json_page_response(page)


@routes.post("/api/v1/projects")
@operation(
    "Create a project", tag="projects", body=schemas.CREATE_PROJECT, responses={201: PROJECT}
)
async def create_project(request: web.Request) -> web.Response:
    identity = identity_of(request)
    body = await read_json(request, schemas.CREATE_PROJECT)
    _check_settings(body)
    project = await projects.create_project(
        request.app[DB],
        identity.user.id,
        body["name"],
        body.get("description", ""),
        body.get("settings", {}),
    )
    return web.json_response(project_json(project), status=201)


@routes.get("/api/v1/projects/{id}", allow_head=False)
@operation("Get a project", tag="projects", responses={200: PROJECT})
async def get_project(request: web.Request) -> web.Response:
    return web.json_response(project_json(await project_of(request)))


@routes.put("/api/v1/projects/{id}")
@operation(
    "Change a project's name, description, settings or status",
    tag="projects",
    body=schemas.UPDATE_PROJECT,
    responses={200: PROJECT},
)
async def update_project(request: web.Request) -> web.Response:
    project = await project_of(request)
    body = await read_json(request, schemas.UPDATE_PROJECT)
    _check_settings(body)
    updated = await projects.update_project(request.app[DB], project.id, body)
    return web.json_response(project_json(updated))


@routes.delete("/api/v1/projects/{id}")
@operation(
    "Delete a project (?force=true also tears down its services; 409 while it has databases)",
    tag="projects",
    responses={204: None},
    query=(query_param("force", {"type": "boolean"}),),
)
async def delete_project(request: web.Request) -> web.Response:
    project = await project_of(request)
    force = query_bool(request, "force")
    kept = await databases.databases_of_project(request.app[DB], project.id)
    if kept:
        # Even with ?force: a database's data is not torn down with a project by accident.
        raise Conflict(
            f"Project {project.name!r} has {len(kept)} database(s); delete them first",
            details={"databases": kept},
        )
    found = await services.services_of_project(request.app[DB], project.id)
    if found and not force:
        raise Conflict(
            f"Project {project.name!r} has {len(found)} service(s); delete them first or use "
            "?force=true to tear them down with it",
            details={"services": [s.id for s in found]},
        )
    for service in found:
        await control.delete_service(request.app[DEPLOYER], service)
    await projects.delete_project(request.app[DB], project.id)
    return web.Response(status=204)
