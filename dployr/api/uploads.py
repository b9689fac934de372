"""POST /deployments/upload: a deployment whose source is a .tar.gz sent with it (SPEC §4.1)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, ClientError, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from dployr.api import deploy_schemas as ds
from dployr.api import schemas
from dployr.api.deployments import deployment_json, new_deployment
from dployr.api.middleware import large_body
from dployr.api.openapi import operation
from dployr.api.validation import checked_json
from dployr.errors import (
    PayloadTooLarge,
    RateLimited,
    Unavailable,
    UnsupportedMediaType,
    ValidationError,
)
from dployr.keys import CONFIG, DEPLOYER
from dployr.pipeline.deployer import Deployer, EnvChange
from dployr.sources.upload import ArchiveRefused, Uploads
from dployr.store import deployments, services
from dployr.store.db import Transaction
from dployr.store.deployments import Deployment, NewDeployment
from dployr.tasks import run_to_end

routes = web.RouteTableDef()
CHUNK = 1 << 20  # written to disk a MiB at a time
# Besides the archive and the deployment part: boundaries and part headers.
FRAMING = 64 * 1024
_JSON_TYPES = ("application/json", "text/plain", "")
MULTIPART = "multipart/form-data"
MAX_QUEUED = 3  # queued upload deployments a service may have (each keeps its archive)


@routes.post("/api/v1/deployments/upload")
@operation(
    "Deploy a directory sent as a .tar.gz (source upload): multipart/form-data with a "
    "`deployment` JSON part (the fields of POST /deployments) and an `archive` part",
    tag="deployments",
    body=ds.UPLOAD_BODY,
    body_type=MULTIPART,
    body_encoding=ds.UPLOAD_ENCODING,
    responses={202: schemas.ref("Deployment")},
)
@large_body
async def upload_deployment(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    deployer = request.app[DEPLOYER]
    limit = config.runtime.max_upload_bytes
    if request.content_type != MULTIPART:
        raise UnsupportedMediaType(
            f"Send {MULTIPART} with a `deployment` JSON part and an `archive` part"
        )
    if request.headers.get("Content-Encoding", "identity").lower() not in ("", "identity"):
        # aiohttp would inflate it as it reads, past every byte count below; the archive is
        # compressed already.
        raise UnsupportedMediaType("Send the upload without a Content-Encoding")
    if (request.content_length or 0) > limit + config.server.max_body_bytes + FRAMING:
        raise _too_large(limit)
    received: Path | None = None
    try:
        prepared: tuple[NewDeployment, list[EnvChange]] | None = None
        reader = await _reader(request)
        # The deployment is checked as soon as its part is read: sent first (as the CLI
        # does), a refused one costs no archive bytes.
        while (part := await _next_part(reader)) is not None:
            if part.name == "deployment" and prepared is None:
                body = await _deployment_part(part, config.server.max_body_bytes)
                prepared = await new_deployment(request, body)
                await _room_for(deployer, prepared[0])  # before the archive's bytes
            elif part.name == "archive" and received is None:
                received = deployer.uploads.incoming()
                await _receive(part, received, limit)
            else:
                raise ValidationError(
                    part.name or "(unnamed part)",
                    "is not a part of an upload: send `deployment` and `archive`, once each",
                )
        if prepared is None:
            raise ValidationError("deployment", "is required (a JSON part)")
        if received is None:
            raise ValidationError("archive", "is required (a .tar.gz part)")
        await _check(deployer.uploads, received)
        new, env = prepared
        archive = received

        async def place(conn: Transaction, created: Deployment) -> None:
            # Each queued upload keeps its archive until it runs: a few per service, then
            # the next waits (counted in the transaction: two at once cannot both pass).
            if await deployments.queued_uploads(conn, created.service_id) > MAX_QUEUED:
                raise _too_many_queued(created.service_name)
            await deployer.uploads.place(archive, created.service_id, created.id)

        try:
            created = await deployer.create(
                new, env, project_given=bool(new.project_id), place=place
            )
        except OSError as err:  # from place(): nothing was recorded
            raise _cannot_store(err) from err
    finally:
        if received is not None:  # still here unless it was placed
            await run_to_end(deployer.uploads.discard(received))
    return web.json_response(deployment_json(created), status=202)


async def _room_for(deployer: Deployer, new: NewDeployment) -> None:
    """A first look at the queue, so that a refused upload need not be sent whole (the
    count in the recording transaction is the one that holds)."""
    service = await services.service_by_name(deployer.db, new.owner_id, new.name)
    if service is not None and await deployments.queued_uploads(deployer.db, service.id) >= (
        MAX_QUEUED
    ):
        raise _too_many_queued(new.name)


def _too_many_queued(name: str) -> RateLimited:
    return RateLimited(
        f"{MAX_QUEUED} uploads of {name} are queued already: "
        "retry once one has started, or cancel one",
        details={"field": "archive", "reason": "too many queued uploads"},
    )


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The archive is over the limit of {limit} bytes (runtime.max_upload_bytes)",
        details={"field": "archive", "reason": f"is over {limit} bytes"},
    )


async def _reader(request: web.Request) -> MultipartReader:
    try:
        return await request.multipart()
    except (ValueError, AssertionError, KeyError) as err:  # aiohttp's words for a bad header
        raise ValidationError(None, f"is not valid {MULTIPART} ({err})") from err


async def _next_part(reader: MultipartReader) -> BodyPartReader | None:
    try:
        part = await reader.next()
    except (ValueError, AssertionError, HttpProcessingError) as err:  # a part header too long,
        # too many of them, a preamble line past aiohttp's limit
        raise ValidationError(None, f"is not valid {MULTIPART} ({_said(err)})") from err
    except (OSError, ClientError) as err:
        raise _cut_short(None) from err
    if part is None:
        return None
    if not isinstance(part, BodyPartReader):
        raise ValidationError(None, "holds a nested multipart body")
    return part


async def _deployment_part(part: BodyPartReader, limit: int) -> dict[str, Any]:
    kind = part.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if kind not in _JSON_TYPES:
        raise UnsupportedMediaType("Send the `deployment` part as JSON (application/json)")
    raw = bytearray()
    while chunk := await _read_chunk(part, "deployment"):
        raw += chunk
        if len(raw) > limit:
            raise PayloadTooLarge(
                f"The deployment part is over the limit of {limit} bytes",
                details={"field": "deployment", "reason": f"is over {limit} bytes"},
            )
    try:
        body = await checked_json(bytes(raw), ds.UPLOAD_DEPLOYMENT)
    except ValidationError as err:
        if err.details is not None and "field" in err.details:
            raise
        reason = err.details["reason"] if err.details else "is not a JSON object"
        raise ValidationError("deployment", reason, f"The deployment part: {err.message}") from err
    return {**body, "source": "upload"}


async def _receive(part: BodyPartReader, path: Path, limit: int) -> None:
    """The archive part to `path`, a MiB at a time, never held whole; past `limit` a 413
    (the caller removes what was written)."""
    try:
        await asyncio.to_thread(path.parent.mkdir, mode=0o700, parents=True, exist_ok=True)
        file = await asyncio.to_thread(open, path, "xb")
        try:
            size = 0
            pending = bytearray()
            while chunk := await _read_chunk(part, "archive"):
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                pending += chunk
                if len(pending) >= CHUNK:
                    await asyncio.to_thread(file.write, bytes(pending))
                    pending.clear()
            if pending:
                await asyncio.to_thread(file.write, bytes(pending))
        finally:
            await run_to_end(asyncio.to_thread(file.close))
    except OSError as err:  # the data dir is full or unwritable: the host's problem, not a 500
        raise _cannot_store(err) from err


def _cannot_store(err: OSError) -> Unavailable:
    return Unavailable(f"The archive cannot be stored in the data dir: {err.strerror or err}")


async def _read_chunk(part: BodyPartReader, field: str) -> bytes:
    try:
        return await part.read_chunk(CHUNK)
    except (OSError, ClientError) as err:  # the client went away mid-upload
        raise _cut_short(field) from err
    except (ValueError, HttpProcessingError) as err:
        raise ValidationError(field, f"is not a valid part ({_said(err)})") from err


def _cut_short(field: str | None) -> ValidationError:
    return ValidationError(field, "was cut short: the connection ended first")


def _said(err: Exception) -> str:
    """aiohttp's words, without the line it quotes (which may be megabytes)."""
    if isinstance(err, HttpProcessingError):
        return f"{type(err).__name__}: {err.message}"[:200]
    return str(err)[:200]


async def _check(uploads: Uploads, path: Path) -> None:
    try:
        await uploads.check(path)
    except ArchiveRefused as err:
        if err.too_big:
            raise PayloadTooLarge(
                f"The archive is refused: {err.reason} "
                f"({uploads.bound} bytes unpacked: runtime.max_upload_bytes x 4)",
                details={"field": "archive", "reason": err.reason},
            ) from err
        raise ValidationError(
            "archive", err.reason, f"The archive is refused: {err.reason}"
        ) from err
