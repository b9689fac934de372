"""`dployr env ls|set|unset`: a service's variables. A secret's value comes from standard
input (`--secret KEY`), never from argv: argv is in `ps` and in shell history."""

from __future__ import annotations

import argparse
import re
from typing import Any

from dployr.cli.commands import api, command, group, service_id
from dployr.cli.errors import USAGE, CommandError
from dployr.cli.interact import read_secret
from dployr.cli.output import Column, print_json, show_list

KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")  # SPEC §4.4
MAX_VALUE = 32768


def add_commands(commands: Any) -> None:
    env = group(commands, "env", "a service's environment variables (applied at its next start)")
    listing = command(
        env, "ls", run_ls, "a service's variables (secrets masked)", "dployr env ls web"
    )
    listing.add_argument("service", metavar="NAME", help="the service's name or id")

    set_ = command(
        env,
        "set",
        run_set,
        "set variables (upsert); they apply at the next deploy or restart, or now with --apply",
        "dployr env set web NODE_ENV=production LOG_LEVEL=info\n"
        "dployr env set web --secret API_KEY < api_key.txt\n"
        'echo -n "$TOKEN" | dployr env set web --secret TOKEN --apply',
    )
    set_.add_argument("service", metavar="NAME", help="the service's name or id")
    set_.add_argument("pairs", nargs="*", metavar="KEY=VALUE", help="plain variables")
    set_.add_argument(
        "--secret",
        metavar="KEY",
        help="a secret variable: its value is read from standard input (asked for, unechoed, "
        "on a terminal), less one trailing newline; stored encrypted, shown masked",
    )
    set_.add_argument("--apply", action="store_true", help="restart the service now")

    unset = command(env, "unset", run_unset, "remove variables", "dployr env unset web OLD_KEY")
    unset.add_argument("service", metavar="NAME", help="the service's name or id")
    unset.add_argument("keys", nargs="+", metavar="KEY", help="the variables to remove")
    unset.add_argument("--apply", action="store_true", help="restart the service now")


def run_ls(args: argparse.Namespace) -> int:
    client = api(args)
    answer = client.get(f"/services/{service_id(client, args.service)}/env")
    if args.json:
        print_json(answer)
        return 0
    columns: list[Column] = [("KEY", "key"), ("VALUE", "value"), ("SECRET", "secret"),
                             ("UPDATED", "updated_at")]  # fmt: skip
    show_list(args, answer["env"], columns, f"{args.service} has no variables")
    return 0


def parse_pairs(pairs: list[str]) -> list[tuple[str, str]]:
    """KEY=VALUE items, checked here (exit 2 naming the bad one) before anything is sent."""
    parsed = []
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep:
            raise CommandError(f"not KEY=VALUE: {item!r}", USAGE)
        check_key(key, item)
        if "\x00" in value or len(value) > MAX_VALUE:
            raise CommandError(f"{key}: a value is at most 32 KiB, with no NUL", USAGE)
        parsed.append((key, value))
    return parsed


def check_key(key: str, item: str | None = None) -> str:
    if not KEY.match(key):
        shown = f"{item!r}: " if item is not None and item != key else ""
        raise CommandError(
            f"{shown}bad variable name {key!r} (letters, digits and _, not starting with a digit)",
            USAGE,
        )
    return key


def run_set(args: argparse.Namespace) -> int:
    if bool(args.pairs) == bool(args.secret):
        raise CommandError("give KEY=VALUE pairs, or --secret KEY (value on stdin)", USAGE)
    if args.secret:
        check_key(args.secret)
        items = [(args.secret, read_secret(f"value of {args.secret}"), True)]
    else:
        items = [(key, value, False) for key, value in parse_pairs(args.pairs)]
    client = api(args)
    sid = service_id(client, args.service)
    answers = []
    for index, (key, value, secret) in enumerate(items):
        last = index == len(items) - 1  # one restart, after the last one
        # A plain KEY=VALUE sends no `secret`: a variable that is secret stays so.
        body = {"key": key, "value": value, **({"secret": True} if secret else {})}
        apply = True if args.apply and last else None
        answers.append(client.post(f"/services/{sid}/env", body, apply=apply))
    if args.json:
        print_json(answers)
        return 0
    keys = " ".join(key for key, _, _ in items)
    when = "restarted with it" if args.apply else "applied at the next deploy or restart"
    print(f"{args.service}: set {keys} ({when})")
    return 0


def run_unset(args: argparse.Namespace) -> int:
    for key in args.keys:
        check_key(key)
    client = api(args)
    sid = service_id(client, args.service)
    for key in args.keys:
        client.delete(f"/services/{sid}/env/{key}")
    status = client.post(f"/services/{sid}/restart") if args.apply else None
    if args.json:
        print_json(status)
        return 0
    when = "restarted without it" if args.apply else "gone at the next deploy or restart"
    print(f"{args.service}: unset {' '.join(args.keys)} ({when})")
    return 0
