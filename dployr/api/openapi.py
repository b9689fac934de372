"""The OpenAPI 3.1 document, generated from the live route table and each handler's Operation."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from dployr import __version__
from dployr.api import (
    catalog_schemas,
    database_schemas,
    deploy_schemas,
    metrics_schemas,
    schemas,
    webhook_schemas,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_ATTR = "__dployr_operation__"
_PATH_PARAM = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Operation:
    summary: str
    tag: str
    responses: dict[int, dict[str, Any] | None]
    body: dict[str, Any] | None = None
    query: tuple[dict[str, Any], ...] = ()
    public: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    streams: tuple[str, ...] = ()  # content types a 200 may stream instead of JSON
    body_type: str = "application/json"
    body_encoding: dict[str, Any] | None = None  # a multipart body's parts (OpenAPI `encoding`)


def operation(
    summary: str,
    *,
    tag: str,
    responses: dict[int, dict[str, Any] | None],
    body: dict[str, Any] | None = None,
    query: tuple[dict[str, Any], ...] = (),
    public: bool = False,
    streams: tuple[str, ...] = (),
    body_type: str = "application/json",
    body_encoding: dict[str, Any] | None = None,
) -> Callable[[Handler], Handler]:
    """Describe a handler for the OpenAPI document; `public` handlers need no token."""

    def attach(handler: Handler) -> Handler:
        setattr(
            handler,
            _ATTR,
            Operation(
                summary,
                tag,
                responses,
                body,
                query,
                public,
                streams=streams,
                body_type=body_type,
                body_encoding=body_encoding,
            ),
        )
        return handler

    return attach


def operation_of(handler: Any) -> Operation | None:
    return getattr(handler, _ATTR, None)


def is_public(handler: Any) -> bool:
    op = operation_of(handler)
    return op is not None and op.public


def query_param(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


PAGING = (
    query_param("page", {"type": "integer", "minimum": 1}, "page number, from 1"),
    query_param("per_page", {"type": "integer", "minimum": 1}, "items a page; capped at 100"),
    query_param("limit", {"type": "integer", "minimum": 1}, "alias of per_page"),
)


def build_document(app: web.Application) -> dict[str, Any]:
    """Every route of the app, documented; a route without an Operation is a bug (ValueError)."""
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        path = route.resource.canonical if route.resource else ""
        op = operation_of(route.handler)
        if op is None:
            raise ValueError(f"{route.method} {path} has no OpenAPI operation")
        paths.setdefault(path, {})[route.method.lower()] = _operation_json(route.method, path, op)
    components = named_schemas()
    refs = _Refs(components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dployr",
            "version": __version__,
            "description": "A small self-hosted deploy agent. Errors always have the shape "
            "of the Error schema.",
        },
        "servers": [{"url": "/"}],
        "paths": refs(dict(sorted(paths.items()))),
        "components": {
            "schemas": {name: refs(schema, root=schema) for name, schema in components.items()},
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a JWT access token from /auth/login, or an API token dpl_…",
                }
            },
        },
    }


def named_schemas() -> dict[str, Any]:
    """Every module's COMPONENTS: one name a schema, one schema a name (else ValueError)."""
    merged: dict[str, Any] = {}
    for module in (
        schemas,
        deploy_schemas,
        catalog_schemas,
        webhook_schemas,
        metrics_schemas,
        database_schemas,
    ):
        for name, schema in module.COMPONENTS.items():
            if name in merged:
                raise ValueError(f"two schemas are named {name}")
            merged[name] = schema
    return merged


class _Refs:
    """A copy of a schema in which each named schema met inside it is a $ref to its component.

    Named schemas are found by identity: the dict a handler validates with is the dict the
    document names, so the two cannot drift apart. The schemas themselves are never changed.
    """

    def __init__(self, components: dict[str, Any]) -> None:
        self._names: dict[int, str] = {}
        for name, schema in components.items():
            other = self._names.setdefault(id(schema), name)
            if other != name:
                raise ValueError(f"{other} and {name} are the same schema: name it once")

    def __call__(self, value: Any, root: Any = None) -> Any:
        if isinstance(value, dict):
            name = self._names.get(id(value))
            if name is not None and value is not root:
                return schemas.ref(name)
            return {key: self(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self(item) for item in value]
        return value


def _operation_json(method: str, path: str, op: Operation) -> dict[str, Any]:
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(path)
    ]
    doc: dict[str, Any] = {
        "operationId": f"{method.lower()}_{path.strip('/').replace('/', '_')}".replace(
            "{", ""
        ).replace("}", ""),
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": params + list(op.query),
        "responses": {
            str(status): _response(status, schema) for status, schema in op.responses.items()
        },
    }
    for content_type in op.streams:
        doc["responses"]["200"]["content"][content_type] = {"schema": {"type": "string"}}
    doc["responses"]["default"] = _response(0, schemas.ref("Error"))
    if op.body is not None:
        media: dict[str, Any] = {"schema": op.body}
        if op.body_encoding is not None:
            media["encoding"] = op.body_encoding
        doc["requestBody"] = {"required": True, "content": {op.body_type: media}}
    if not op.public:
        doc["security"] = [{"bearer": []}]
    return doc


def _response(status: int, schema: dict[str, Any] | None) -> dict[str, Any]:
    description = "error (see Error)" if status == 0 else f"HTTP {status}"
    if schema is None:
        return {"description": description}
    return {"description": description, "content": {"application/json": {"schema": schema}}}
