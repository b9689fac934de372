"""Middlewares, outermost first: request log, error envelope, body limit + auth + rate limits."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping

from aiohttp import web

from dployr.api.openapi import is_public
from dployr.auth.clients import Client, identify, parse_address
from dployr.auth.ratelimit import Quota
from dployr.errors import (
    HTTP_STATUS_CODES,
    AuthenticationRequired,
    DployrError,
    PayloadTooLarge,
)
from dployr.keys import (
    AGENT_COUNTERS,
    AUTH,
    CLIENT,
    CONFIG,
    EXTRA_QUOTA,
    IDENTITY,
    RATE_LIMITS,
    TRUSTED_PROXIES,
)

_LOGGER = logging.getLogger("dployr.access")
_ERRORS = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HOOKS_PREFIX = "/api/v1/hooks/"
UNLIMITED = frozenset({"/health", "/health/live", "/health/ready", "/metrics"})
_BODY_HEADERS = frozenset({"content-type", "content-length", "content-encoding"})
_MESSAGES = {
    404: "No such path: {path}",
    405: "Method {method} is not allowed on {path}",
    413: "Request body is over the limit of {limit} bytes",
}


_LARGE_BODY = "__dployr_large_body__"


def large_body(handler: Handler) -> Handler:
    """The one kind of route exempt from `server.max_body_bytes`: it streams its body to disk
    within a limit of its own (POST /deployments/upload: `runtime.max_upload_bytes`)."""
    setattr(handler, _LARGE_BODY, True)
    return handler


def client_of(request: web.Request) -> Client:
    """The request's client, worked out once: the socket peer, or behind a trusted proxy the
    address its X-Forwarded-For vouches for (auth/clients.py)."""
    client = request.get(CLIENT)
    if client is None:
        forwarded = request.headers.getall("X-Forwarded-For", [])
        client = identify(request.remote, forwarded, request.app[TRUSTED_PROXIES])
        request[CLIENT] = client
    return client


def public_scheme(request: web.Request) -> str:
    """The scheme the client used: behind a trusted proxy (HTTPS on api_domain) its
    X-Forwarded-Proto, else the socket's own; for the URLs the API hands out (hook_url)."""
    address = parse_address(request.remote) if request.remote else None
    if address is not None and address in request.app[TRUSTED_PROXIES]:
        said = request.headers.get("X-Forwarded-Proto", "").split(",")[-1].strip().lower()
        if said in ("http", "https"):
            return said
    return request.scheme


@web.middleware
async def log_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One line a request: method, path (never the query string), status, milliseconds, client."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        elapsed = (time.perf_counter() - started) * 1000
        counters = request.app.get(AGENT_COUNTERS)
        if counters is not None:
            counters.count_request(_route_of(request), request.method, status)
        _LOGGER.info(
            "%s %s %s %.1fms %s",
            request.method,
            request.path,
            status,
            elapsed,
            client_of(request).address,
        )


def _route_of(request: web.Request) -> str:
    """The route's template (`/api/v1/services/{service_id}`), never the raw path: one label
    value per route, whatever ids clients send; unknown paths share one value."""
    route = request.match_info.route
    resource = route.resource if route is not None else None
    return resource.canonical if resource is not None else "(unmatched)"


@web.middleware
async def error_envelope(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every error into the SPEC's `{"error": {code, message, details}}` body."""
    try:
        return await handler(request)
    except DployrError as err:
        return _error_response(err.status, err.body(), err.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = HTTP_STATUS_CODES.get(exc.status, "internal_error")
        message = _MESSAGES.get(exc.status, exc.reason).format(
            method=request.method,
            path=request.path,
            limit=request.app[CONFIG].server.max_body_bytes,
        )
        headers = {k: v for k, v in exc.headers.items() if k.lower() not in _BODY_HEADERS}
        return _error_response(exc.status, {"error": {"code": code, "message": message}}, headers)
    except Exception:
        _ERRORS.exception("unhandled error on %s %s", request.method, request.path)
        return _error_response(
            500,
            {
                "error": {
                    "code": "internal_error",
                    "message": "Internal server error; the daemon log has the details",
                }
            },
            {},
        )


def _error_response(status: int, body: object, headers: dict[str, str]) -> web.Response:
    return web.json_response(body, status=status, headers=headers)


@web.middleware
async def access_control(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Body limit, who is calling, whether they may, and their rate-limit quota on every answer."""
    config = request.app[CONFIG]
    exempt = getattr(request.match_info.handler, _LARGE_BODY, False)
    if (request.content_length or 0) > config.server.max_body_bytes and not exempt:
        raise PayloadTooLarge(
            f"Request body is over the limit of {config.server.max_body_bytes} bytes"
        )
    if request.path in UNLIMITED:
        return await handler(request)
    limits = request.app[RATE_LIMITS] if config.rate_limit.enabled else None
    route = request.match_info
    public = route.http_exception is not None or is_public(route.handler)
    address = client_of(request).key
    try:
        identity = await request.app[AUTH].authenticate(request.headers.get("Authorization"))
    except DployrError as err:
        # A bad token is a 401 on every route (SPEC §13), and it still counts against the
        # caller's address: no free guessing.
        _add_quota(err.headers, limits.anonymous.hit(address) if limits else None)
        raise
    quota = None
    if limits is not None:
        if identity is None:
            # A push hook counts only its failed verifications (api/hooks.py): GitHub's few
            # addresses carry every repository's pushes and must not run out.
            if not (public and request.path.startswith(HOOKS_PREFIX)):
                quota = limits.anonymous.hit(address)
        else:
            quota = limits.authenticated.hit(f"user:{identity.user.id}")
    try:
        if identity is not None:
            request[IDENTITY] = identity
        elif not public:
            raise AuthenticationRequired()
        response = await handler(request)
    except (DployrError, web.HTTPException) as err:
        _add_quota(err.headers, _tightest(quota, request.get(EXTRA_QUOTA)))
        raise
    _add_quota(response.headers, _tightest(quota, request.get(EXTRA_QUOTA)))
    return response


def _tightest(first: Quota | None, second: Quota | None) -> Quota | None:
    if first is None or second is None:
        return first or second
    return first if first.remaining <= second.remaining else second


def _add_quota(headers: MutableMapping[str, str], quota: Quota | None) -> None:
    if quota is not None:
        for key, value in quota.headers().items():
            headers.setdefault(key, value)  # a handler's own (tighter) numbers win
