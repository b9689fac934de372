"""`dployr services …`: the apps on the daemon, by name or id — list, show, live status,
start/stop/restart, scale (swarm), logs (followed until Ctrl-C), remove, volumes."""

from __future__ import annotations

import argparse
import time
from typing import Any

from dployr.cli.client import Api, ApiError
from dployr.cli.commands import api, command, group, page_flags, service_id
from dployr.cli.interact import confirm, human_bytes, yes_flag
from dployr.cli.metrics import add_service_commands
from dployr.cli.output import Column, print_json, show_list, show_object

FOLLOW_AGAIN_SECONDS = 1.0
MAX_TAIL = 10_000  # the API's cap
STATUS_FIELDS: list[Column] = [("status", "status"), ("port", "host_port"),
                               ("started", "started_at"), ("restarts", "restarts"),
                               ("health", "health"), ("container", "container_id")]  # fmt: skip


def add_commands(commands: Any) -> None:
    services = group(commands, "services", "your apps: list, status, start/stop, logs, remove")
    listing = command(
        services, "ls", run_ls, "list services", "dployr services ls\ndployr services ls --json"
    )
    listing.add_argument("--search", help="only names containing this")
    listing.add_argument("--status", help="only services in this status")
    page_flags(listing)
    add_service_commands(services)

    def one(name: str, run: Any, help: str, example: str) -> argparse.ArgumentParser:
        parser = command(services, name, run, help, example)
        parser.add_argument("service", metavar="NAME", help="the service's name or id (svc_…)")
        return parser

    one(
        "show",
        run_show,
        "a service: release, routes, volumes, hook URL",
        "dployr services show web",
    )
    one("status", run_status, "the live instance's state, read from the runtime",
        "dployr services status web")  # fmt: skip
    one("start", run_action, "start a stopped service", "dployr services start web")
    one("stop", run_action, "stop a running service (it stays stopped)", "dployr services stop web")
    one("restart", run_action, "restart with the current env (a new instance of the live release)",
        "dployr services restart web")  # fmt: skip
    logs = one("logs", run_logs, "the live instance's output",
               "dployr services logs web --tail 20\ndployr services logs -f web")  # fmt: skip
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing until Ctrl-C")
    logs.add_argument("--tail", type=int, default=100, help="lines from the end (default 100)")
    logs.add_argument("--since", metavar="ISO", help="only lines after it (2026-01-01T00:00:00Z)")
    remove = one("rm", run_rm, "remove a service: containers, images, routes, history, volumes",
                 "dployr services rm web\ndployr services rm web --keep-volumes --yes")  # fmt: skip
    remove.add_argument("--keep-volumes", action="store_true",
                        help="keep its volumes for a later service of the same name")  # fmt: skip
    yes_flag(remove)
    scale = one("scale", run_scale, "run N tasks of a swarm service's live release, no new release",
                "dployr services scale web 3\ndployr services scale web 1 --json")  # fmt: skip
    scale.add_argument("replicas", metavar="N", type=_replicas, help="how many tasks (1-100)")
    one("volumes", run_volumes, "the service's volumes and the bytes each holds",
        "dployr services volumes web")  # fmt: skip


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


def run_show(args: argparse.Namespace) -> int:
    client = api(args)
    service = client.get(f"/services/{service_id(client, args.service)}")
    fields: list[Column] = [
        ("name", "name"), ("status", "status"), ("desired", "desired_state"),
        ("runtime", "runtime"), ("target", "target"), ("port", "host_port"),
        ("release", "current_deployment.number"), ("commit", "current_deployment.commit_sha"),
        ("auto deploy", "auto_deploy"),
        ("routes", lambda s: " ".join(_route(r) for r in s.get("routes") or []) or None),
        ("volumes", lambda s: " ".join(f"{v['name']}:{v['path']}" for v in s["volumes"]) or None),
        ("hook url", "hook_url"), ("created", "created_at"), ("updated", "updated_at"),
        ("project", "project_id"), ("id", "id"),
    ]  # fmt: skip
    if service.get("replicas"):  # a swarm service: the count it is scaled to
        fields.insert(2, ("replicas", "replicas"))
    show_object(args, service, fields)
    return 0


def _route(route: dict[str, Any]) -> str:
    prefix = route.get("path_prefix") or "/"
    return str(route["domain"]) + ("" if prefix == "/" else prefix)


def run_status(args: argparse.Namespace) -> int:
    client = api(args)
    status = client.get(f"/services/{service_id(client, args.service)}/status")
    show_object(args, status, status_fields(status))
    return 0


def status_fields(status: dict[str, Any]) -> list[Column]:
    """A status's lines: a swarm service's also says how many of its tasks run."""
    if not status.get("replicas"):
        return STATUS_FIELDS
    return [*STATUS_FIELDS[:1], ("replicas", lambda s: tasks(s["replicas"])), *STATUS_FIELDS[1:]]


def tasks(replicas: dict[str, Any] | None) -> str | None:
    """`2/3 running`: a swarm service's tasks that run, of those it should have."""
    return None if not replicas else f"{replicas['running']}/{replicas['desired']} running"


def _replicas(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 1 <= number <= 100:
        raise argparse.ArgumentTypeError(f"{value!r}: give a number of tasks, 1-100")
    return number


def run_scale(args: argparse.Namespace) -> int:
    client = api(args)
    status = client.post(f"/services/{service_id(client, args.service)}/scale",
                         {"replicas": args.replicas})  # fmt: skip
    if args.json:
        print_json(status)
    else:
        print(f"{args.service}: scaled to {args.replicas}; {tasks(status.get('replicas')) or '-'}")
    return 0


def run_action(args: argparse.Namespace) -> int:
    """start, stop or restart: the API answers with the status after it."""
    action = args.services_command
    client = api(args)
    sid = service_id(client, args.service)
    try:
        status = client.post(f"/services/{sid}/{action}")
    except ApiError as err:
        if err.code == "invalid_state" and "no live release" in str(err):
            raise ApiError(err.status, err.code, f"{err}; deploy it first: dployr deploy") from None
        raise
    if args.json:
        print_json(status)
    else:
        port = f" on port {status['host_port']}" if status.get("host_port") else ""
        print(f"{args.service}: {status['status']}{port}")
    return 0


def run_logs(args: argparse.Namespace) -> int:
    client = api(args)
    path = f"/services/{service_id(client, args.service)}/logs"
    if not args.follow:
        answer = client.get(path, tail=args.tail, since=args.since)
        if args.json:
            print_json(answer)
            return 0
        for line in answer["logs"]:
            _print_line(line)
        return 0
    _follow(client, path, args)
    return 0


def _follow(client: Api, path: str, args: argparse.Namespace) -> None:
    """Until Ctrl-C (KeyboardInterrupt ends main() with 130, quietly). A stream ends with its
    instance (a restart, a deploy, a stop): then the next one is followed from the last line
    seen, the lines of that same millisecond already shown left out."""
    tail, since = args.tail, args.since
    last, seen = "", set[str]()
    while True:
        for raw, line in client.records(path, follow=True, tail=tail, since=since):
            stamp = line["timestamp"]
            if stamp < last or (stamp == last and line["message"] in seen):
                continue
            if stamp != last:
                last, seen = stamp, set()
            seen.add(line["message"])
            if args.json:
                print(raw, flush=True)
            else:
                _print_line(line)
        time.sleep(FOLLOW_AGAIN_SECONDS)
        if last:
            tail, since = MAX_TAIL, last


def _print_line(line: dict[str, Any]) -> None:
    print(f"{line['timestamp']} {line['stream']} {line['message']}", flush=True)


def run_rm(args: argparse.Namespace) -> int:
    client = api(args)
    sid = service_id(client, args.service)
    kept = "; its volumes are kept" if args.keep_volumes else ", and its volumes with their data"
    confirm(args, f"remove service {args.service} ({sid}): containers, images, routes{kept}?")
    client.delete(f"/services/{sid}", keep_volumes=args.keep_volumes or None)
    print(f"removed {args.service} ({sid})")
    return 0


def run_volumes(args: argparse.Namespace) -> int:
    client = api(args)
    answer = client.get(f"/services/{service_id(client, args.service)}/volumes")
    columns: list[Column] = [("NAME", "name"), ("PATH", "path"),
                             ("SIZE", lambda v: human_bytes(v.get("size_bytes"))),
                             ("CREATED", "created_at")]  # fmt: skip
    if args.json:
        print_json(answer)
    else:
        show_list(args, answer["items"], columns, f"{args.service} has no volumes")
    return 0
