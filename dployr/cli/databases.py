"""`dployr databases …`: managed postgres, redis and mariadb (SPEC §14) — create and wait
until running, link to services, back up and restore."""

from __future__ import annotations

import argparse
from typing import Any

from dployr.cli.client import Api, ApiError
from dployr.cli.commands import api, command, database_id, group, page_flags, project_id, service_id
from dployr.cli.env import check_key
from dployr.cli.errors import CommandError
from dployr.cli.interact import confirm, human_bytes, wait_for, yes_flag
from dployr.cli.output import Column, print_json, show_list, show_object

FIELDS: list[Column] = [
    ("name", "name"),
    ("engine", "engine"),
    ("version", "version"),
    ("status", "status"),
    ("error", "error"),
    ("port", "host_port"),
    ("user", "username"),
    ("database", "database"),
    ("url", "connection_url"),
    ("linked", lambda d: " ".join(d["linked_service_ids"]) or None),
    ("backups", lambda d: f"{d['backup_schedule']} (keep {d['keep_backups']})"),
    ("volume", "volume"),
    ("created", "created_at"),
    ("project", "project_id"),
    ("id", "id"),
]
BACKUP: list[Column] = [
    ("ID", "id"),
    ("STATUS", "status"),
    ("TRIGGER", "trigger"),
    ("SIZE", lambda b: human_bytes(b.get("size_bytes"))),
    ("CREATED", "created_at"),
    ("FINISHED", "finished_at"),
    ("ERROR", "error"),
]
BUSY = ("creating", "restoring")


def add_commands(commands: Any) -> None:
    dbs = group(commands, "databases", "managed postgres, redis and mariadb; links and backups")
    listing = command(dbs, "ls", run_ls, "list databases", "dployr databases ls --engine postgres")
    listing.add_argument("--engine", choices=("postgres", "redis", "mariadb"), help="only these")
    listing.add_argument("--project", metavar="NAME", help="only this project's (name or id)")
    page_flags(listing)

    create = command(
        dbs,
        "create",
        run_create,
        "make a database (its password is printed once) and wait until it runs",
        "dployr databases create shop-db --engine postgres\n"
        "dployr databases create cache --engine redis --version 7 --no-wait",
    )
    create.add_argument("name", help="its name (lower-case letters, digits, -)")
    create.add_argument(
        "--engine", required=True, choices=("postgres", "redis", "mariadb"), help="which one"
    )
    create.add_argument(
        "--version", help="the engine image's tag (postgres 15, redis 7, mariadb 10.11)"
    )
    create.add_argument("--keep-backups", type=int, metavar="N", help="backups kept (default 7)")
    create.add_argument("--backup-schedule", metavar="CRON", help='UTC cron (default "0 3 * * *")')
    create.add_argument("--project", metavar="NAME", help="the project it belongs to (name or id)")
    _wait_flags(create)

    show = command(
        dbs, "show", run_show, "a database (password masked)", "dployr databases show shop-db"
    )
    show.add_argument("database", metavar="DB", help="its name or id (db_…)")

    remove = command(
        dbs,
        "rm",
        run_rm,
        "delete a database: its container, and its data and backups",
        "dployr databases rm shop-db\ndployr databases rm shop-db --keep-data --yes",
    )
    remove.add_argument("database", metavar="DB", help="its name or id (db_…)")
    remove.add_argument("--force", action="store_true", help="unlink its services first")
    remove.add_argument(
        "--keep-data",
        action="store_true",
        help="keep its volume and backups (a database of the same name gets them)",
    )
    yes_flag(remove)

    link = command(
        dbs,
        "link",
        run_link,
        "give a service the database's URL as a secret variable (at its next start, or --apply)",
        "dployr databases link shop-db web\n"
        "dployr databases link cache web --env REDIS_URL --apply",
    )
    link.add_argument("database", metavar="DB", help="its name or id (db_…)")
    link.add_argument("service", metavar="SERVICE", help="the service's name or id")
    link.add_argument("--env", metavar="KEY", help="the variable (default DATABASE_URL)")
    link.add_argument("--apply", action="store_true", help="restart the service now")

    unlink = command(
        dbs,
        "unlink",
        run_unlink,
        "take the database's variable from a service",
        "dployr databases unlink shop-db web --apply",
    )
    unlink.add_argument("database", metavar="DB", help="its name or id (db_…)")
    unlink.add_argument("service", metavar="SERVICE", help="the service's name or id")
    unlink.add_argument("--apply", action="store_true", help="restart the service now")

    backups = command(
        dbs,
        "backups",
        run_backups,
        "a database's backups, newest first",
        "dployr databases backups shop-db",
    )
    backups.add_argument("database", metavar="DB", help="its name or id (db_…)")
    page_flags(backups)

    backup = command(
        dbs,
        "backup",
        run_backup,
        "take a backup now and wait for it",
        "dployr databases backup shop-db",
    )
    backup.add_argument("database", metavar="DB", help="its name or id (db_…)")
    _wait_flags(backup)

    restore = command(
        dbs,
        "restore",
        run_restore,
        "replace the database's data with a backup's, and wait",
        "dployr databases restore shop-db bak_…",
    )
    restore.add_argument("database", metavar="DB", help="its name or id (db_…)")
    restore.add_argument("backup", metavar="BACKUP_ID", help="the backup (bak_…)")
    yes_flag(restore)
    _wait_flags(restore)


def _wait_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-wait", action="store_true", help="return once the daemon took it")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait (default 600)")


def run_ls(args: argparse.Namespace) -> int:
    client = api(args)
    pid = project_id(client, args.project) if args.project else None
    page = client.get(
        "/databases", engine=args.engine, project_id=pid, page=args.page, per_page=args.per_page
    )
    columns: list[Column] = [
        ("NAME", "name"),
        ("ENGINE", "engine"),
        ("VERSION", "version"),
        ("STATUS", "status"),
        ("PORT", "host_port"),
        ("LINKED", lambda d: len(d["linked_service_ids"]) or None),
        ("ID", "id"),
    ]
    show_list(
        args,
        page,
        columns,
        "no databases (make one: dployr databases create NAME --engine postgres)",
    )
    return 0


def run_create(args: argparse.Namespace) -> int:
    client = api(args)
    body: dict[str, Any] = {"name": args.name, "engine": args.engine}
    for key in ("version", "keep_backups", "backup_schedule"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    if args.project:
        body["project_id"] = project_id(client, args.project)
    made = client.post("/databases", body)
    if args.json:
        print_json(made)  # the API's answer: the only one with the password
    else:
        print(
            f"{made['name']} ({made['id']}): {made['engine']} {made['version']}, "
            f"user {made['username']}, database {made['database']}"
        )
        print(
            f"password  {made['password']}\n\nThis is the only time it is shown: keep it now "
            f"(or link it to a service: dployr databases link {made['name']} SERVICE)."
        )
    if args.no_wait:
        return 0
    done = _wait_database(client, args, made["id"])
    if done["status"] != "running":
        raise CommandError(
            f"{made['name']} is {done['status']}: {done.get('error') or 'see the daemon log'}"
        )
    if not args.json:
        print(f"{made['name']} is running on 127.0.0.1:{done['host_port']}")
    return 0


def _wait_database(client: Api, args: argparse.Namespace, db: str) -> dict[str, Any]:
    return wait_for(
        lambda: client.get(f"/databases/{db}"),
        lambda d: d["status"] not in BUSY,
        lambda d: f"{d['name']}: {d['status']}",
        args.timeout,
    )


def run_show(args: argparse.Namespace) -> int:
    client = api(args)
    show_object(args, client.get(f"/databases/{database_id(client, args.database)}"), FIELDS)
    return 0


def run_rm(args: argparse.Namespace) -> int:
    client = api(args)
    db = database_id(client, args.database)
    what = (
        "its container (its data and backups are kept)"
        if args.keep_data
        else "its container, data and backups"
    )
    confirm(args, f"delete database {args.database} ({db}): {what}?")
    try:
        client.delete(
            f"/databases/{db}", force=args.force or None, keep_data=args.keep_data or None
        )
    except ApiError as err:
        if err.status == 409 and "linked" in str(err):
            raise ApiError(
                err.status,
                err.code,
                f"{err}; unlink it (dployr databases unlink "
                f"{args.database} SERVICE) or pass --force",
                err.details,
            ) from None
        raise
    print(f"removed {args.database} ({db})")
    return 0


def run_link(args: argparse.Namespace) -> int:
    client = api(args)
    db, sid = database_id(client, args.database), service_id(client, args.service)
    body = {"service_id": sid, **({"env": check_key(args.env)} if args.env else {})}
    link = client.post(f"/databases/{db}/links", body, apply=args.apply or None)
    if args.json:
        print_json(link)
    else:
        when = "restarted with it" if args.apply else "applied at its next start or deploy"
        print(f"{args.service}: {link['env']} = the URL of {args.database} (secret; {when})")
    return 0


def run_unlink(args: argparse.Namespace) -> int:
    client = api(args)
    db, sid = database_id(client, args.database), service_id(client, args.service)
    client.delete(f"/databases/{db}/links/{sid}")
    status = client.post(f"/services/{sid}/restart") if args.apply else None
    if args.json:
        print_json(status)
    else:
        when = "restarted without it" if args.apply else "gone at its next start or deploy"
        print(f"{args.service}: unlinked from {args.database} ({when})")
    return 0


def run_backups(args: argparse.Namespace) -> int:
    client = api(args)
    db = database_id(client, args.database)
    page = client.get(f"/databases/{db}/backups", page=args.page, per_page=args.per_page)
    show_list(
        args,
        page,
        BACKUP,
        f"no backups of {args.database} yet (take one: dployr databases backup {args.database})",
    )
    return 0


def run_backup(args: argparse.Namespace) -> int:
    client = api(args)
    db = database_id(client, args.database)
    backup = client.post(f"/databases/{db}/backups")
    if not args.no_wait:
        backup = wait_for(
            lambda: _backup(client, db, backup["id"]),
            lambda b: b["status"] != "running",
            lambda b: f"backup {b['id']} of {args.database}: {b['status']}…",
            args.timeout,
        )
    if args.json:
        print_json(backup)
    elif backup["status"] == "running":
        print(f"backup {backup['id']} started; see: dployr databases backups {args.database}")
    elif backup["status"] == "succeeded":
        print(f"backup {backup['id']} of {args.database}: {human_bytes(backup['size_bytes'])}")
    if backup["status"] == "failed":
        raise CommandError(f"backup {backup['id']} of {args.database} failed: {backup['error']}")
    return 0


def _backup(client: Api, db: str, backup_id: str) -> dict[str, Any]:
    """One backup, from the list (the API has no GET of one; it is on the first pages)."""
    for page in range(1, 6):
        answer = client.get(f"/databases/{db}/backups", page=page, per_page=100)
        for item in answer["items"]:
            if item["id"] == backup_id:
                return dict(item)
        if page >= answer["total_pages"]:
            break
    raise CommandError(f"backup {backup_id} is gone (kept backups are pruned, oldest first)")


def run_restore(args: argparse.Namespace) -> int:
    client = api(args)
    db = database_id(client, args.database)
    confirm(args, f"replace the data of {args.database} ({db}) with backup {args.backup}?")
    record = client.post(f"/databases/{db}/restore", {"backup_id": args.backup})
    if not args.no_wait:
        record = _wait_database(client, args, db)
    if args.json:
        print_json(record)
    if record["status"] in BUSY:
        print(
            f"{args.database}: restoring from {args.backup}; "
            f"see: dployr databases show {args.database}"
        )
        return 0
    if record.get("error") or record["status"] != "running":
        raise CommandError(f"{args.database}: {record.get('error') or record['status']}")
    if not args.json:
        print(f"{args.database}: restored from {args.backup}, running")
    return 0
