"""`dployr routes ls|add|rm`: which domain (and path prefix) goes to which service."""

from __future__ import annotations

import argparse
from typing import Any

from dployr.cli.client import Api
from dployr.cli.commands import api, command, group, page_flags, service_id
from dployr.cli.errors import CommandError
from dployr.cli.output import Column, show_list, show_object

FIELDS: list[Column] = [("domain", "domain"), ("path prefix", "path_prefix"), ("tls", "tls"),
                        ("port", "port"), ("service", "service_id"), ("id", "id")]  # fmt: skip


def add_commands(commands: Any) -> None:
    routes = group(commands, "routes", "domains the proxy sends to your services")
    listing = command(
        routes, "ls", run_ls, "list routes", "dployr routes ls\ndployr routes ls --service web"
    )
    listing.add_argument("--service", metavar="NAME", help="only this service's (name or id)")
    page_flags(listing)

    add = command(
        routes,
        "add",
        run_add,
        "route a domain (and path prefix) to a service; the proxy serves it at once",
        "dployr routes add app.example.com web\n"
        "dployr routes add example.com api --path-prefix /api --port 8080\n"
        "dployr routes add web.localhost web --tls off",
    )
    add.add_argument("domain", help="a host name (a leading *. for a wildcard)")
    add.add_argument("service", metavar="SERVICE", help="the service's name or id")
    add.add_argument("--port", type=int, help="the app's port to send to (default: its port)")
    add.add_argument("--path-prefix", metavar="P", help="only requests under this path (default /)")
    add.add_argument(
        "--tls",
        choices=("auto", "off"),
        help="auto: certificates from the proxy (the default, but off for *.localhost)",
    )

    remove = command(
        routes,
        "rm",
        run_rm,
        "remove a route; the proxy stops serving it first",
        "dployr routes rm app.example.com\ndployr routes rm rte_…",
    )
    remove.add_argument("route", metavar="ID_OR_DOMAIN", help="the route's id, or its domain")


def run_ls(args: argparse.Namespace) -> int:
    client = api(args)
    sid = service_id(client, args.service) if args.service else None
    page = client.get("/proxy/routes", service_id=sid, page=args.page, per_page=args.per_page)
    names = {} if args.json else _service_names(client)
    columns: list[Column] = [("DOMAIN", "domain"), ("PATH", "path_prefix"),
                             ("SERVICE", lambda r: names.get(r["service_id"], r["service_id"])),
                             ("PORT", "port"), ("TLS", "tls"), ("CREATED", "created_at"),
                             ("ID", "id")]  # fmt: skip
    show_list(args, page, columns, "no routes (add one: dployr routes add DOMAIN SERVICE)")
    return 0


def _service_names(client: Api) -> dict[str, str]:
    """Service ids to names, for the table (one page of 100: enough for one small VPS)."""
    return {s["id"]: s["name"] for s in client.get("/services", per_page=100)["items"]}


def run_add(args: argparse.Namespace) -> int:
    client = api(args)
    body: dict[str, Any] = {"domain": args.domain, "service_id": service_id(client, args.service)}
    for key in ("port", "path_prefix", "tls"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    route = client.post("/proxy/routes", body)
    show_object(args, route, FIELDS)
    return 0


def run_rm(args: argparse.Namespace) -> int:
    client = api(args)
    route_id = args.route if args.route.startswith("rte_") else _by_domain(client, args.route)
    client.delete(f"/proxy/routes/{route_id}")
    print(f"removed {args.route} ({route_id})" if route_id != args.route else f"removed {route_id}")
    return 0


def _by_domain(client: Api, domain: str) -> str:
    wanted = domain.strip().lower().rstrip(".")
    found, page = [], 1
    while True:
        answer = client.get("/proxy/routes", page=page, per_page=100)
        found += [r for r in answer["items"] if r["domain"] == wanted]
        if page >= answer["total_pages"]:
            break
        page += 1
    if not found:
        raise CommandError(f"no route for {domain!r}; see `dployr routes ls`")
    if len(found) > 1:  # one per path prefix (or per owner, for an admin)
        ids = ", ".join(f"{r['id']} ({r['path_prefix']})" for r in found)
        raise CommandError(f"{len(found)} routes are for {domain!r}: {ids}; give the id")
    return str(found[0]["id"])
