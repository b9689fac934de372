"""`dployr deployments ls|show|logs|rollback|cancel|rm`: releases and their logs."""

from __future__ import annotations

import argparse
import json
from typing import Any

from dployr.cli.commands import api, command, group, page_flags, service_id
from dployr.cli.errors import USAGE, CommandError
from dployr.cli.finish import FINAL, finish, follow_flags
from dployr.cli.output import Column, print_json, show_list, show_object, text

STATUSES = ("queued", "fetching", "building", "starting", "health_checking", "switching", *FINAL)


def add_commands(commands: Any) -> None:
    deployments = group(commands, "deployments", "releases: list, show, logs, rollback, cancel")
    listing = command(
        deployments, "ls", run_ls, "list deployments, newest first",
        "dployr deployments ls\ndployr deployments ls --service web --status failed",
    )  # fmt: skip
    listing.add_argument("--service", help="only this service's (name or id)")
    listing.add_argument("--status", choices=STATUSES, help="only deployments in this status")
    page_flags(listing)

    show = command(
        deployments, "show", run_show, "a deployment: its stages, commit and error",
        "dployr deployments show dep_…",
    )  # fmt: skip
    show.add_argument("id", help="the deployment (dep_…)")

    logs = command(
        deployments, "logs", run_logs, "a deployment's build and deploy log",
        "dployr deployments logs dep_…\ndployr deployments logs -f dep_…   # until it ends",
    )  # fmt: skip
    logs.add_argument("id", help="the deployment (dep_…)")
    logs.add_argument("-f", "--follow", action="store_true", help="stream until it ends")

    rollback = command(
        deployments, "rollback", run_rollback,
        "deploy that release's artifact again, without rebuilding, and follow it",
        "dployr deployments rollback dep_…",
    )  # fmt: skip
    rollback.add_argument("id", help="the release to go back to (dep_…)")
    follow_flags(rollback)

    cancel = command(
        deployments, "cancel", run_cancel, "cancel a queued or running deployment",
        "dployr deployments cancel dep_…",
    )  # fmt: skip
    cancel.add_argument("id", help="the deployment (dep_…)")

    remove = command(
        deployments, "rm", run_rm, "remove a finished deployment (not the live one) from history",
        "dployr deployments rm dep_…",
    )  # fmt: skip
    remove.add_argument("id", help="the deployment (dep_…)")


def run_ls(args: argparse.Namespace) -> int:
    client = api(args)
    service = service_id(client, args.service) if args.service else None
    page = client.get(
        "/deployments", service_id=service, status=args.status, page=args.page,
        per_page=args.per_page,
    )  # fmt: skip
    columns: list[Column] = [("ID", "id"), ("NUMBER", "number"), ("STATUS", "status"),
               ("SOURCE", "source"), ("COMMIT", lambda d: (d.get("commit_sha") or "")[:10]),
               ("BY", "triggered_by"), ("CREATED", "created_at"),
               ("ERROR", lambda d: (d.get("error") or "")[:60])]  # fmt: skip
    show_list(args, page, columns, "no deployments (make one: dployr deploy)")
    return 0


def run_show(args: argparse.Namespace) -> int:
    deployment = api(args).get(f"/deployments/{args.id}")
    if args.json:
        print_json(deployment)
        return 0
    fields: list[Column] = [(k, k) for k in ("id", "service_id", "number", "status", "progress",
              "source", "remote", "branch", "image", "runtime", "version", "target", "port",
              "commit_sha", "artifact", "triggered_by", "rollback_of", "created_at",
              "finished_at", "error")]  # fmt: skip
    show_object(args, deployment, fields)
    print("\nstages:")
    for stage in deployment.get("stages") or []:
        print(f"  {stage['name']:<16} {stage['status']:<10} {text(stage.get('message'))}")
    return 0


def run_logs(args: argparse.Namespace) -> int:
    client = api(args)
    if args.follow:
        for raw, line in client.records(f"/deployments/{args.id}/logs", follow=True):
            if line.get("end"):
                print(f"-- {args.id} is {line['status']}")
                break
            if args.json:
                print(raw, flush=True)
            else:
                print(line.get("message", ""), flush=True)
        return 0
    after = 0
    while True:  # page by page: a long build log is many pages
        page = client.get(f"/deployments/{args.id}/logs", after=after)
        for line in page["logs"]:
            print(json.dumps(line) if args.json else line["message"])
        if not page["has_more"]:
            return 0
        after = page["next_after"]


def run_rollback(args: argparse.Namespace) -> int:
    client = api(args)
    deployment = client.post(f"/deployments/{args.id}/rollback")
    print(f"deployment {deployment['id']}: release {deployment['number']}, rolling back to "
          f"{args.id}", flush=True)  # fmt: skip
    return finish(args, client, deployment)


def run_cancel(args: argparse.Namespace) -> int:
    """Only a queued or running one: a DELETE of a finished one would remove it from history."""
    client = api(args)
    deployment = client.get(f"/deployments/{args.id}")
    if deployment["status"] in FINAL:
        raise CommandError(
            f"{args.id} is {deployment['status']}: nothing to cancel (`dployr deployments rm` "
            "removes a finished one from history)",
            USAGE,
        )
    client.delete(f"/deployments/{args.id}")
    print(f"cancelling {args.id}")
    return 0


def run_rm(args: argparse.Namespace) -> int:
    """Only a finished one: a DELETE of a running one would cancel it."""
    client = api(args)
    deployment = client.get(f"/deployments/{args.id}")
    if deployment["status"] not in FINAL:
        raise CommandError(
            f"{args.id} is {deployment['status']}: `dployr deployments cancel` stops it", USAGE
        )
    client.delete(f"/deployments/{args.id}")
    print(f"removed {args.id}")
    return 0
