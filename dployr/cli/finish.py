"""After a 202 (deploy, rollback): follow the deployment, or not, and end with its outcome."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from dployr.cli.client import Api
from dployr.cli.errors import FAILED, INTERRUPTED
from dployr.cli.output import print_json

# Where a deployment stops moving (a live one can later be superseded, which also ends it).
FINAL = ("live", "failed", "cancelled", "superseded", "rolled_back")


def follow_flags(parser: argparse.ArgumentParser) -> None:
    flags = parser.add_argument_group("following")
    flags.add_argument("-q", "--quiet", action="store_true", help="the stages only, not the log")
    flags.add_argument("--no-follow", action="store_true", help="return after the 202")
    flags.add_argument(
        "--cancel-on-interrupt",
        action="store_true",
        help="Ctrl-C cancels the deployment (by default it detaches and the deployment goes on)",
    )


def finish(args: argparse.Namespace, client: Api, deployment: dict[str, Any]) -> int:
    """0 when the deployment went live; 1 with its error (and failed stage) otherwise; 130
    on Ctrl-C (after cancelling it with --cancel-on-interrupt)."""
    from dployr.cli.follow import failed_stage, follow

    out = sys.stderr if args.json else sys.stdout
    dep_id = deployment["id"]
    if args.no_follow:
        if args.json:
            print_json(deployment)
        else:
            print(f"{dep_id} is {deployment['status']}; follow it: dployr deployments logs -f "
                  f"{dep_id}")  # fmt: skip
        return 0
    try:
        final = follow(client, deployment, quiet=args.quiet, out=out)
    except KeyboardInterrupt:
        if args.cancel_on_interrupt:
            client.delete(f"/deployments/{dep_id}")
            print(f"\ncancelled {dep_id}", file=sys.stderr)
        else:
            print(f"\ndetached: {dep_id} goes on; follow it again: dployr deployments logs -f "
                  f"{dep_id}", file=sys.stderr)  # fmt: skip
        return INTERRUPTED
    if args.json:
        print_json(final)
    if final["status"] == "live":
        if not args.json:
            print(f"{dep_id} is live{_where(client, final)}", file=out)
        return 0
    stage = failed_stage(final)
    at = f" at {stage}" if stage else ""
    print(f"dployr: {dep_id} {final['status']}{at}: {final.get('error') or 'no error given'}",
          file=sys.stderr)  # fmt: skip
    return FAILED


def _where(client: Api, deployment: dict[str, Any]) -> str:
    """Where the live release answers: its routes' domains, or its loopback port."""
    service = client.get(f"/services/{deployment['service_id']}")
    domains = [route["domain"] for route in service.get("routes") or []]
    if domains:
        return ": " + " ".join(domains)
    if service.get("host_port"):
        return f": http://127.0.0.1:{service['host_port']} on the daemon's host"
    return ""
