"""`dployr webhooks ls|add|rm|deliveries|redeliver|ping`: signed POSTs to your URLs on events."""

from __future__ import annotations

import argparse
from typing import Any

from dployr.cli.commands import api, command, group, page_flags
from dployr.cli.interact import read_secret
from dployr.cli.output import Column, print_json, show_list, show_object

FIELDS: list[Column] = [("id", "id"), ("url", "url"), ("events", lambda w: ",".join(w["events"])),
                        ("active", "active"), ("created", "created_at")]  # fmt: skip
DELIVERY: list[Column] = [("ID", "id"), ("EVENT", "event_type"), ("STATUS", "status"),
                          ("ATTEMPTS", "attempts"), ("CODE", "last_status_code"),
                          ("ERROR", "last_error"), ("NEXT", "next_attempt_at"),
                          ("CREATED", "created_at")]  # fmt: skip


def add_commands(commands: Any) -> None:
    hooks = group(commands, "webhooks", "signed POSTs to your URLs when things happen")
    listing = command(
        hooks, "ls", run_ls, "list webhooks (never their secrets)", "dployr webhooks ls"
    )
    page_flags(listing)

    add = command(
        hooks,
        "add",
        run_add,
        "send events to a URL; a secret is generated (printed once) unless you pipe one in",
        "dployr webhooks add https://ci.example.com/hook --events deployment.succeeded,"
        'deployment.failed\nprintf %s "$SECRET" | dployr webhooks add https://x.example/h '
        "--secret-stdin",
    )
    # Not `url`: that is the daemon's (--url).
    add.add_argument(
        "target", metavar="URL", help="where to POST (no private address unless allowed)"
    )
    add.add_argument(
        "--events",
        metavar="a,b",
        help="comma-separated event types (default: all of them, `*`), e.g. "
        "deployment.succeeded,service.crashed",
    )
    add.add_argument(
        "--secret-stdin",
        action="store_true",
        help="read the signing secret (24+ bytes) from standard input instead of generating one",
    )

    remove = command(
        hooks, "rm", run_rm, "delete a webhook and its deliveries", "dployr webhooks rm whk_…"
    )
    remove.add_argument("id", help="the webhook's id (whk_…)")

    deliveries = command(
        hooks, "deliveries", run_deliveries, "a webhook's deliveries, newest first",
        "dployr webhooks deliveries whk_…",
    )  # fmt: skip
    deliveries.add_argument("id", help="the webhook's id (whk_…)")
    page_flags(deliveries)

    again = command(
        hooks, "redeliver", run_redeliver, "send a delivery's event again (a new delivery)",
        "dployr webhooks redeliver whk_… dlv_…",
    )  # fmt: skip
    again.add_argument("id", help="the webhook's id (whk_…)")
    again.add_argument("delivery", help="the delivery's id (dlv_…)")

    ping = command(hooks, "ping", run_ping, "send a `ping` event now", "dployr webhooks ping whk_…")
    ping.add_argument("id", help="the webhook's id (whk_…)")


def run_ls(args: argparse.Namespace) -> int:
    page = api(args).get("/webhooks", page=args.page, per_page=args.per_page)
    columns: list[Column] = [(h.upper(), read) for h, read in FIELDS[1:]] + [("ID", "id")]
    show_list(args, page, columns, "no webhooks (add one: dployr webhooks add URL)")
    return 0


def run_add(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"url": args.target}
    if args.events:
        body["events"] = [e.strip() for e in args.events.split(",") if e.strip()]
    if args.secret_stdin:
        body["secret"] = read_secret("webhook secret")
    webhook = api(args).post("/webhooks", body)
    if args.json:
        print_json(webhook)
        return 0
    show_object(args, webhook, FIELDS)
    if not args.secret_stdin:  # generated: this answer is the only place it ever appears
        print(f"\nsecret  {webhook['secret']}\n\nThis is the only time it is shown: keep it now.")
    return 0


def run_rm(args: argparse.Namespace) -> int:
    api(args).delete(f"/webhooks/{args.id}")
    print(f"removed {args.id}")
    return 0


def run_deliveries(args: argparse.Namespace) -> int:
    page = api(args).get(f"/webhooks/{args.id}/deliveries", page=args.page, per_page=args.per_page)
    show_list(args, page, DELIVERY, "no deliveries yet (send one: dployr webhooks ping ID)")
    return 0


def run_redeliver(args: argparse.Namespace) -> int:
    delivery = api(args).post(f"/webhooks/{args.id}/deliveries/{args.delivery}/redeliver")
    _queued(args, delivery)
    return 0


def run_ping(args: argparse.Namespace) -> int:
    _queued(args, api(args).post(f"/webhooks/{args.id}/ping"))
    return 0


def _queued(args: argparse.Namespace, delivery: dict[str, Any]) -> None:
    if args.json:
        print_json(delivery)
    else:
        print(
            f"queued {delivery['id']} ({delivery['event_type']}); see: dployr webhooks "
            f"deliveries {args.id}"
        )
