"""`dployr status`: one screen on the host, its services, routes and each one's last deployment."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from dployr.cli import charts
from dployr.cli.client import Api, ApiError
from dployr.cli.commands import api, command
from dployr.cli.output import Column, ago, print_json, show_list

LISTED = 100  # the API's largest page: services, routes and recent deployments in one call each


def add_commands(commands: Any) -> None:
    command(
        commands,
        "status",
        run_status,
        "one screen: the host (readiness, usage now), services, routes, last deployments",
        "dployr status\ndployr status --json | jq '.services[].status'",
    )


def gather(client: Api) -> dict[str, Any]:
    """Every call `status` makes, as one object. The services come first, alone: with an
    expired access token, that call renews it once before the others (run together, each
    would try to renew with the same refresh token). The rest run at once, in threads:
    over HTTPS to a remote VPS each is a round trip."""
    services = client.get("/services", per_page=LISTED)
    calls: dict[str, Callable[[], Any]] = {
        "ready": lambda: _ready(client),
        "info": lambda: client.request("GET", "/info", auth=False),
        "instance": lambda: _instance(client),
        "routes": lambda: client.get("/proxy/routes", per_page=LISTED),
        # The newest deployments of every service in one call rather than one per service:
        # a service not among the last LISTED shows its live release (the service's own
        # current_deployment) instead.
        "deployments": lambda: client.get("/deployments", per_page=LISTED),
        "tasks": lambda: _tasks_of(client, services["items"]),
    }
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = {name: pool.submit(call) for name, call in calls.items()}
        answers = {name: future.result() for name, future in futures.items()}
    instance, now = answers["instance"]
    for service, tasks in zip(services["items"], answers["tasks"], strict=True):
        service["tasks"] = tasks
    last: dict[str, Any] = {}
    for deployment in answers["deployments"]["items"]:  # newest first
        last.setdefault(deployment["service_id"], deployment)
    return {
        "url": client.settings.url,
        "ready": answers["ready"],
        "info": answers["info"],
        "instance": instance,
        "now": now,
        "services": services["items"],
        "services_total": services["total"],
        "routes": answers["routes"]["items"],
        "routes_total": answers["routes"]["total"],
        "last_deployments": last,
    }


def _tasks_of(client: Api, services: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
    """How many tasks of each swarm service run (its status's `replicas`); None for the
    others, which run one instance and are not asked."""
    return [
        client.get(f"/services/{s['id']}/status").get("replicas") if s.get("replicas") else None
        for s in services
    ]


def _ready(client: Api) -> dict[str, Any]:
    """/health/ready: `{status, checks}`, also when the daemon says 503 (what is not ready)."""
    try:
        return dict(client.request("GET", "/health/ready", auth=False))
    except ApiError as err:
        if err.status != 503:
            raise
        checks = err.details if isinstance(err.details, dict) else {}
        return {"status": "unavailable", "checks": checks}


def _instance(client: Api) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """This host, and its newest sample (a one-point window: only `current` is wanted)."""
    items = client.get("/instances")["items"]
    if not items:
        return None, None
    metrics = client.get(f"/instances/{items[0]['id']}/metrics", step=3600)
    return items[0], metrics.get("current")


def run_status(args: argparse.Namespace) -> int:
    overview = gather(api(args))
    if args.json:
        print_json(overview)
        return 0
    show(args, overview)
    return 0


def show(args: argparse.Namespace, overview: dict[str, Any]) -> None:
    for label, value in host_lines(overview):
        print(f"{label:<7} {value}")
    services = overview["services"]
    names = {s["id"]: s["name"] for s in services}
    last = overview["last_deployments"]
    print(f"\nSERVICES ({_count(services, overview['services_total'])})")
    columns: list[Column] = [
        ("NAME", "name"), ("STATUS", "status"), ("TARGET", "target"), ("PORT", "host_port"),
        ("LIVE", lambda s: _release(s.get("current_deployment"))),
        ("LAST DEPLOYMENT", lambda s: _last(last.get(s["id"]), s)),
    ]  # fmt: skip
    if any(s.get("tasks") for s in services):  # swarm services: how many of their tasks run
        columns.insert(2, ("TASKS", lambda s: _tasks(s.get("tasks"))))
    show_list(args, services, columns, "no services yet (deploy one: dployr deploy)")
    routes = overview["routes"]
    print(f"\nROUTES ({_count(routes, overview['routes_total'])})")
    route_columns: list[Column] = [
        ("DOMAIN", "domain"), ("PATH", "path_prefix"),
        ("SERVICE", lambda r: names.get(r["service_id"], r["service_id"])),
        ("PORT", "port"), ("TLS", "tls"),
    ]  # fmt: skip
    show_list(args, routes, route_columns, "no routes (add one: dployr routes add)")


def host_lines(overview: dict[str, Any]) -> list[tuple[str, str]]:
    info, instance, now = overview["info"], overview["instance"] or {}, overview["now"] or {}
    ready = overview["ready"]
    checks = ready.get("checks") or {}
    problems = [f"{name}: {why}" for name, why in checks.items() if why != "ok"]
    cores = f" ({instance['cpu_count']} cores)" if instance.get("cpu_count") else ""
    return [
        ("host", f"{instance.get('hostname', '?')} · {instance.get('os', '?')} · "
                 f"up {charts.human_seconds(instance.get('uptime'))} · {overview['url']}"),
        ("ready", "yes" if ready["status"] == "ok" else "NO: " + "; ".join(problems)),
        ("now", f"CPU {charts.percent(now.get('cpu_percent'))}{cores} · memory "
                f"{_used(now, instance, 'memory')} · disk {_used(now, instance, 'disk')}"),
        ("agent", f"dployr {info.get('version')} · docker {instance.get('docker_version') or '-'}"
                  f" · proxy {info.get('proxy') or '-'} · targets "
                  f"{', '.join(info.get('targets') or []) or '-'}"),
    ]  # fmt: skip


def _used(now: dict[str, Any], instance: dict[str, Any], what: str) -> str:
    used = charts.human_bytes(now.get(f"{what}_used"))
    total = charts.human_bytes(instance.get(f"{what}_total"))
    return f"{used} of {total} ({charts.percent(now.get(f'{what}_percent'))})"


def _count(items: list[Any], total: int) -> str:
    return str(total) if total == len(items) else f"{len(items)} of {total}"


def _tasks(replicas: dict[str, Any] | None) -> str | None:
    return None if not replicas else f"{replicas['running']}/{replicas['desired']}"


def _release(deployment: dict[str, Any] | None) -> str | None:
    return None if deployment is None else f"#{deployment['number']}"


def _last(deployment: dict[str, Any] | None, service: dict[str, Any]) -> str | None:
    if deployment is None:  # older than the newest LISTED: the live one is the last we know
        live = service.get("current_deployment")
        return None if live is None else f"#{live['number']} {live['status']}"
    return f"#{deployment['number']} {deployment['status']} {ago(deployment['created_at'])}"
