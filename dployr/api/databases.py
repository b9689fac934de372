"""/databases: managed databases (SPEC §14), their links to services, backups and restore."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dployr.api import database_schemas as dbs
from dployr.api import schemas
from dployr.api.openapi import PAGING, operation, query_param
from dployr.api.projects import owner_filter
from dployr.api.users import identity_of
from dployr.api.validation import (
    page_json,
    page_request,
    query_bool,
    query_choice,
    query_text,
    read_json,
)
from dployr.config import cron_problem
from dployr.databases import backups, links
from dployr.databases.engines import ENGINE, ENGINES
from dployr.databases.manager import CreateRequest
from dployr.errors import NotFound, ValidationError
from dployr.keys import CONFIG, DATABASES, DB, DEPLOYER
from dployr.store import database_backups as backup_store
from dployr.store import databases as store
from dployr.store import projects, services
from dployr.store.database_backups import Backup
from dployr.store.databases import ManagedDatabase

routes = web.RouteTableDef()
DATABASE = schemas.ref("Database")


def database_json(
    request: web.Request, record: ManagedDatabase, linked: list[str]
) -> dict[str, Any]:
    return {
        "id": record.id,
        "owner_id": record.owner_id,
        "project_id": record.project_id,
        "name": record.name,
        "engine": record.engine,
        "version": record.version,
        "status": record.status,
        "error": record.error,
        "host_port": record.host_port,
        "username": record.username,
        "database": record.database,
        "connection_url": request.app[DATABASES].masked_url(record),
        "volume": record.volume,
        "backup_schedule": record.backup_schedule,
        "keep_backups": record.keep_backups,
        "linked_service_ids": linked,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


def backup_json(backup: Backup) -> dict[str, Any]:
    return {
        "id": backup.id,
        "database_id": backup.database_id,
        "status": backup.status,
        "trigger": backup.trigger,
        "size_bytes": backup.size_bytes,
        "created_at": backup.created_at,
        "finished_at": backup.finished_at,
        "error": backup.error,
    }


async def _one_json(request: web.Request, record: ManagedDatabase) -> dict[str, Any]:
    linked = await store.linked_service_ids(request.app[DB], [record.id])
    return database_json(request, record, linked[record.id])


async def database_of(request: web.Request) -> ManagedDatabase:
    """The database in the path, if the caller may see it; another user's is a 404."""
    record = await store.get_database(
        request.app[DB], request.match_info["id"], owner_filter(identity_of(request))
    )
    if record is None:
        raise NotFound("No such database")
    return record


def check_cron(expression: str) -> str:
    if (problem := cron_problem(expression)) is not None:
        raise ValidationError(
            "backup_schedule", f'must be a cron expression like "0 3 * * *" ({problem})'
        )
    return expression


@routes.get("/api/v1/databases", allow_head=False)
@operation(
    "List managed databases, newest first",
    tag="databases",
    responses={200: schemas.ref("DatabasePage")},
    query=(
        *PAGING,
        query_param("engine", dbs.ENGINE),
        query_param("project_id", {"type": "string"}),
    ),
)
async def list_databases(request: web.Request) -> web.Response:
    page = await store.list_databases(
        request.app[DB],
        page_request(request),
        owner_filter(identity_of(request)),
        engine=query_choice(request, "engine", ENGINES),
        project_id=query_text(request, "project_id"),
    )
    linked = await store.linked_service_ids(request.app[DB], [r.id for r in page.items])
    items = [database_json(request, r, linked[r.id]) for r in page.items]
    return web.json_response(page_json(page, items))


@routes.post("/api/v1/databases")
@operation(
    "Create a managed database; its password is in this answer only",
    tag="databases",
    body=dbs.CREATE_DATABASE,
    responses={202: schemas.ref("DatabaseWithPassword")},
)
async def create_database(request: web.Request) -> web.Response:
    identity = identity_of(request)
    body = await read_json(request, dbs.CREATE_DATABASE)
    config = request.app[CONFIG]
    project_id = body.get("project_id")
    db = request.app[DB]
    if project_id and await projects.get_project(db, project_id, identity.user.id) is None:
        raise ValidationError("project_id", "no such project")
    record, password = await request.app[DATABASES].create(
        CreateRequest(
            owner_id=identity.user.id,
            name=body["name"],
            engine=body["engine"],
            version=body.get("version") or ENGINE[body["engine"]].default_version,
            project_id=project_id or None,
            backup_schedule=check_cron(
                body.get("backup_schedule") or config.databases.backup_schedule
            ),
            keep_backups=body.get("keep_backups") or config.databases.keep_backups,
        )
    )
    shown = {**database_json(request, record, []), "password": password}
    return web.json_response(shown, status=202)


@routes.get("/api/v1/databases/{id}", allow_head=False)
@operation("Get a managed database", tag="databases", responses={200: DATABASE})
async def get_database(request: web.Request) -> web.Response:
    return web.json_response(await _one_json(request, await database_of(request)))


@routes.delete("/api/v1/databases/{id}")
@operation(
    "Delete a database: its container, and its volume and backups unless ?keep_data=true; "
    "409 while linked unless ?force=true (which unlinks first)",
    tag="databases",
    responses={204: None},
    query=(
        query_param("keep_data", {"type": "boolean"}),
        query_param("force", {"type": "boolean"}),
    ),
)
async def delete_database(request: web.Request) -> web.Response:
    record = await database_of(request)
    keep_data, force = query_bool(request, "keep_data"), query_bool(request, "force")
    await request.app[DATABASES].delete(record, keep_data=keep_data, force=force)
    return web.Response(status=204)


# -- links --------------------------------------------------------------------------------------


@routes.post("/api/v1/databases/{id}/links")
@operation(
    "Link a service: a secret env var (DATABASE_URL) with the URL for its target, applied at "
    "its next start or deploy (?apply=true restarts it now); 201 new, 200 changed",
    tag="databases",
    body=dbs.CREATE_LINK,
    responses={201: schemas.ref("DatabaseLink"), 200: schemas.ref("DatabaseLink")},
    query=(query_param("apply", {"type": "boolean"}),),
)
async def link_service(request: web.Request) -> web.Response:
    record = await database_of(request)
    body = await read_json(request, dbs.CREATE_LINK)
    apply = query_bool(request, "apply")
    service = await services.get_service(
        request.app[DB], body["service_id"], owner_filter(identity_of(request))
    )
    if service is None or service.owner_id != record.owner_id:
        # Another owner's service is not found, the way another owner's objects never are.
        raise ValidationError("service_id", "no such service of the database's owner")
    link, new = await links.link(
        request.app[DATABASES],
        request.app[DEPLOYER],
        record,
        service,
        body.get("env") or links.DEFAULT_ENV,
        apply=apply,
    )
    return web.json_response(
        {
            "database_id": link.database_id,
            "service_id": link.service_id,
            "env": link.env,
            "created_at": link.created_at,
        },
        status=201 if new else 200,
    )


@routes.delete("/api/v1/databases/{id}/links/{service_id}")
@operation("Unlink a service (its env var goes)", tag="databases", responses={204: None})
async def unlink_service(request: web.Request) -> web.Response:
    record = await database_of(request)
    await links.unlink(request.app[DATABASES], record, request.match_info["service_id"])
    return web.Response(status=204)


# -- backups ------------------------------------------------------------------------------------


@routes.get("/api/v1/databases/{id}/backups", allow_head=False)
@operation(
    "The database's backups, newest first",
    tag="databases",
    responses={200: schemas.ref("BackupPage")},
    query=PAGING,
)
async def list_backups(request: web.Request) -> web.Response:
    record = await database_of(request)
    page = await backup_store.list_backups(request.app[DB], record.id, page_request(request))
    return web.json_response(page_json(page, [backup_json(b) for b in page.items]))


@routes.post("/api/v1/databases/{id}/backups")
@operation(
    "Take a backup now (a logical dump, in the background)",
    tag="databases",
    responses={202: schemas.ref("Backup")},
)
async def create_backup(request: web.Request) -> web.Response:
    record = await database_of(request)
    backup = await backups.take_backup(request.app[DATABASES], record, "api")
    return web.json_response(backup_json(backup), status=202)


@routes.post("/api/v1/databases/{id}/restore")
@operation(
    "Restore the database from one of its backups (status `restoring`, then `running`)",
    tag="databases",
    body=dbs.RESTORE,
    responses={202: DATABASE},
)
async def restore_database(request: web.Request) -> web.Response:
    record = await database_of(request)
    body = await read_json(request, dbs.RESTORE)
    restoring = await backups.restore(request.app[DATABASES], record, body["backup_id"])
    return web.json_response(await _one_json(request, restoring), status=202)
