"""The REST API: one module per resource, registered here in one place."""

from __future__ import annotations

from aiohttp import web

from dployr.api import (
    credentials,
    databases,
    deliveries,
    deployments,
    health,
    hooks,
    instances,
    metrics,
    projects,
    routes,
    service_metrics,
    services,
    templates,
    tokens,
    uploads,
    users,
    webhooks,
    ws,
)


def setup_routes(app: web.Application) -> None:
    for module in (
        health,
        users,
        tokens,
        projects,
        deployments,
        uploads,
        services,
        routes,
        credentials,
        templates,
        webhooks,
        hooks,
        instances,
        service_metrics,
        metrics,
        ws,
        deliveries,
        databases,
    ):
        app.router.add_routes(module.routes)
