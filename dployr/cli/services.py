"""`dployr services …`: the apps on the daemon, by name or id."""

from __future__ import annotations

import argparse
from typing import Any

from dployr.cli.commands import api, command, group, page_flags
from dployr.cli.metrics import add_service_commands
from dployr.cli.output import Column, show_list


def add_commands(commands: Any) -> None:
    services = group(commands, "services", "your apps: list, status, start/stop, logs, remove")
    listing = command(
        services, "ls", run_ls, "list services", "dployr services ls\ndployr services ls --json"
    )
    listing.add_argument("--search", help="only names containing this")
    listing.add_argument("--status", help="only services in this status")
    page_flags(listing)
    add_service_commands(services)


def run_ls(args: argparse.Namespace) -> int:
    page = api(args).get(
        "/services", search=args.search, status=args.status, page=args.page, per_page=args.per_page
    )
    columns: list[Column] = [("NAME", "name"), ("STATUS", "status"), ("TARGET", "target"),
               ("RUNTIME", "runtime"), ("PORT", "host_port"),
               ("RELEASE", "current_deployment.number"),
               ("DOMAINS", lambda s: " ".join(r["domain"] for r in s.get("routes") or []) or None),
               ("ID", "id")]  # fmt: skip
    show_list(args, page, columns, "no services yet (deploy one: dployr deploy)")
    return 0
