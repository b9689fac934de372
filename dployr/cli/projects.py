"""`dployr projects ls|create|rm` and `dployr credentials ls|add|rm` (deploy keys and tokens
for private repositories, registry logins: the secret comes from standard input or a file,
never argv)."""

from __future__ import annotations

import argparse
from typing import Any

from dployr.cli.client import ApiError
from dployr.cli.commands import api, command, credential_id, group, page_flags, project_id
from dployr.cli.errors import USAGE, CommandError
from dployr.cli.interact import confirm, read_secret, yes_flag
from dployr.cli.output import Column, show_list, show_object

PROJECT: list[Column] = [("NAME", "name"), ("STATUS", "status"), ("DESCRIPTION", "description"),
                         ("CREATED", "created_at"), ("ID", "id")]  # fmt: skip
CREDENTIAL: list[Column] = [("NAME", "name"), ("TYPE", "type"), ("CREATED", "created_at"),
                            ("ID", "id")]  # fmt: skip


def add_commands(commands: Any) -> None:
    projects = group(commands, "projects", "groups of services and databases")
    listing = command(projects, "ls", run_projects, "list projects", "dployr projects ls")
    listing.add_argument("--search", help="only names containing this")
    page_flags(listing)
    create = command(
        projects, "create", run_project_create, "make a project",
        'dployr projects create shop --description "the shop and its workers"',
    )  # fmt: skip
    create.add_argument("name", help="its name")
    create.add_argument("--description", help="what it is for")
    remove = command(
        projects, "rm", run_project_rm, "delete a project (--force: its services too)",
        "dployr projects rm shop\ndployr projects rm shop --force --yes",
    )  # fmt: skip
    remove.add_argument("project", metavar="NAME", help="the project's name or id (prj_…)")
    remove.add_argument("--force", action="store_true", help="tear down its services with it")
    yes_flag(remove)

    credentials = group(
        commands, "credentials", "deploy keys and tokens for private repositories, registry logins"
    )
    listing = command(
        credentials, "ls", run_credentials, "list credentials (never their secrets)",
        "dployr credentials ls",
    )  # fmt: skip
    page_flags(listing)
    add = command(
        credentials, "add", run_credential_add,
        "store a deploy key, an access token or a registry password, encrypted (read from stdin "
        "or --file)",
        "dployr credentials add github-key --type deploy_key --file ~/.ssh/deploy_key\n"
        'printf %s "$GITHUB_TOKEN" | dployr credentials add gh --type token\n'
        'printf %s "$REGISTRY_PASSWORD" | dployr credentials add hub --type registry --username me',
    )  # fmt: skip
    add.add_argument("name", help="a name to know it by")
    add.add_argument(
        "--type",
        required=True,
        choices=("deploy_key", "token", "registry"),
        help="deploy_key: an SSH private key; token: an HTTPS access token; registry: a login "
        "to the swarm target's image registry (with --username)",
    )
    add.add_argument("--username", help="the registry login's user (type registry)")
    add.add_argument("--file", metavar="PATH", help="read the secret from this file")
    remove = command(
        credentials, "rm", run_credential_rm, "delete a credential", "dployr credentials rm gh"
    )
    remove.add_argument("credential", metavar="NAME", help="its name or id (crd_…)")


def run_projects(args: argparse.Namespace) -> int:
    page = api(args).get("/projects", search=args.search, page=args.page, per_page=args.per_page)
    show_list(args, page, PROJECT, "no projects")
    return 0


def run_project_create(args: argparse.Namespace) -> int:
    body = {"name": args.name}
    if args.description is not None:
        body["description"] = args.description
    project = api(args).post("/projects", body)
    show_object(args, project, [(h.lower(), read) for h, read in PROJECT])
    return 0


def run_project_rm(args: argparse.Namespace) -> int:
    client = api(args)
    pid = project_id(client, args.project)
    if args.force:
        confirm(args, f"delete project {args.project} ({pid}) and tear down its services?")
    try:
        client.delete(f"/projects/{pid}", force=args.force or None)
    except ApiError as err:
        if err.code == "conflict" and "service" in str(err) and not args.force:
            raise ApiError(err.status, err.code, f"{err} (here: --force)") from None
        raise
    print(f"removed {args.project} ({pid})")
    return 0


def run_credentials(args: argparse.Namespace) -> int:
    page = api(args).get("/credentials", page=args.page, per_page=args.per_page)
    show_list(args, page, CREDENTIAL, "no credentials (add one: dployr credentials add NAME)")
    return 0


def run_credential_add(args: argparse.Namespace) -> int:
    if (args.type == "registry") != (args.username is not None):
        raise CommandError("--username goes with --type registry (and it needs one)", USAGE)
    if args.type == "registry":
        password = read_secret("registry password", args.file)
        data = {"username": args.username, "password": password}
    else:
        field = "key" if args.type == "deploy_key" else "token"
        secret = read_secret("deploy key" if field == "key" else "token", args.file)
        if field == "key":
            secret += "\n"  # ssh refuses a private key file without its last newline
        data = {field: secret}
    body = {"name": args.name, "type": args.type, "data": data}
    credential = api(args).post("/credentials", body)
    show_object(args, credential, [(h.lower(), read) for h, read in CREDENTIAL])
    return 0


def run_credential_rm(args: argparse.Namespace) -> int:
    client = api(args)
    cid = credential_id(client, args.credential)
    client.delete(f"/credentials/{cid}")
    print(f"removed {args.credential} ({cid})")
    return 0
