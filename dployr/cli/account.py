"""`dployr login|logout|whoami` and `dployr tokens create|ls|rm`."""

from __future__ import annotations

import argparse
import getpass
import sys
from dataclasses import replace
from typing import Any

from dployr.cli.client import Api, ApiError, Settings, settings_path
from dployr.cli.commands import api, command, group, page_flags
from dployr.cli.errors import USAGE, CommandError
from dployr.cli.output import print_json, show_list, show_object


def add_commands(commands: Any) -> None:
    login = command(
        commands,
        "login",
        run_login,
        "log in to a daemon and keep its URL and token in ~/.config/dployr/cli.toml (0600)",
        "dployr login --url https://deploy.example.com --email me@example.com\n"
        "dployr login --url http://127.0.0.1:7870 --token dpl_…   # an API token, for CI",
    )
    login.add_argument("--email", help="your account's email (asked when missing)")
    login.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    login.add_argument(
        "--token-stdin",
        action="store_true",
        help="read an API token from standard input (--token puts it where `ps` shows it)",
    )

    command(
        commands,
        "logout",
        run_logout,
        "revoke this session on the daemon and forget the token",
        "dployr logout",
    )
    command(commands, "whoami", run_whoami, "the account the token belongs to", "dployr whoami")

    tokens = group(commands, "tokens", "API tokens for scripts and CI (shown once)")
    create = command(
        tokens,
        "create",
        run_token_create,
        "make an API token (printed once: keep it)",
        "dployr tokens create ci --expires-in-days 90",
    )
    create.add_argument("name", help="what the token is for")
    create.add_argument("--expires-in-days", type=int, help="default: never expires")
    listing = command(tokens, "ls", run_token_ls, "your API tokens", "dployr tokens ls")
    page_flags(listing)
    remove = command(tokens, "rm", run_token_rm, "revoke an API token", "dployr tokens rm tok_…")
    remove.add_argument("id", help="the token's id (tok_…)")


def run_login(args: argparse.Namespace) -> int:
    settings = Settings.load(args.url, None)
    token = sys.stdin.readline().strip() if args.token_stdin else args.token
    if args.token_stdin and not token:
        raise CommandError("no token on standard input", USAGE)
    if token:  # an API token: check it, then keep it as it is
        settings = replace(settings, token=token, refresh_token="", email="")
        user = Api(settings).get("/auth/me")
        settings = replace(settings, email=user["email"])
    else:
        email = args.email or settings.email or _ask("Email: ")
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        elif sys.stdin.isatty():
            password = getpass.getpass("Password: ")  # never echoed
        else:
            raise CommandError("no terminal to ask for the password: use --password-stdin", USAGE)
        pair = Api(settings).request(
            "POST", "/auth/login", {"email": email, "password": password}, auth=False
        )
        user = pair["user"]
        settings = replace(
            settings,
            token=pair["access_token"],
            refresh_token=pair["refresh_token"],
            email=user["email"],
        )
    path = settings.save()
    if args.json:
        print_json(user)
    else:
        print(f"logged in to {settings.url} as {user['email']} ({user['role']}); saved in {path}")
    return 0


def _ask(prompt: str) -> str:
    if not sys.stdin.isatty():
        raise CommandError(f"no terminal to ask for it: pass {prompt.strip(': ').lower()}", USAGE)
    answer = input(prompt).strip()
    if not answer:
        raise CommandError("nothing given", USAGE)
    return answer


def run_logout(args: argparse.Namespace) -> int:
    path = settings_path()
    stored = Settings.read(path)
    client = api(args)
    revoked = True
    try:
        client.post("/auth/logout")
    except ApiError as err:
        if err.status != 401:  # an expired or revoked token is as good as logged out
            raise
        revoked = False
    except CommandError:
        revoked = False  # the daemon is gone: still forget the token here
    if stored.token:
        replace(stored, token="", refresh_token="").save(path)
    where = client.settings.url
    print(f"logged out of {where}" if revoked else f"forgot the token for {where}")
    return 0


def run_whoami(args: argparse.Namespace) -> int:
    client = api(args)
    user = client.get("/auth/me")
    if args.json:
        print_json(user)
    else:
        print(f"{user['email']} ({user['role']}, {user['id']}) on {client.settings.url}")
    return 0


def run_token_create(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"name": args.name}
    if args.expires_in_days is not None:
        body["expires_in_days"] = args.expires_in_days
    token = api(args).post("/tokens", body)
    if args.json:
        print_json(token)
    else:
        show_object(args, token, [("id", "id"), ("name", "name"), ("expires", "expires_at")])
        print(f"\n{token['token']}\n\nThis is the only time it is shown: keep it now.")
    return 0


def run_token_ls(args: argparse.Namespace) -> int:
    page = api(args).get("/tokens", page=args.page, per_page=args.per_page)
    columns = [("ID", "id"), ("NAME", "name"), ("CREATED", "created_at"),
               ("LAST USED", "last_used_at"), ("EXPIRES", "expires_at")]  # fmt: skip
    show_list(args, page, columns, "no API tokens (make one: dployr tokens create NAME)")
    return 0


def run_token_rm(args: argparse.Namespace) -> int:
    api(args).delete(f"/tokens/{args.id}")
    print(f"revoked {args.id}")
    return 0
