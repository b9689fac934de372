"""How client commands are declared (flags every one takes, help with an example) and how a
name given on the command line becomes an id."""

from __future__ import annotations

import argparse
from typing import Any

from dployr.cli.client import Api, Settings
from dployr.cli.errors import CommandError


def _client_flags(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "--url", default=default, help="the daemon (default: cli.toml, DPLOYR_URL, loopback)"
    )
    parser.add_argument(
        "--token", default=default, help="an API or access token (default: cli.toml, DPLOYR_TOKEN)"
    )
    parser.add_argument(
        "--json", action="store_true", default=default, help="print the API's JSON, for scripts"
    )


def add_client_flags(root: argparse.ArgumentParser) -> None:
    """On the root parser (`dployr --json services ls`); each command takes them too
    (`dployr services ls --json`): SUPPRESS keeps a command's parser from overwriting a value
    the root already read."""
    _client_flags(root, None)


_PARENT = argparse.ArgumentParser(add_help=False)
_client_flags(_PARENT, argparse.SUPPRESS)


def group(commands: Any, name: str, help: str) -> Any:
    """A command with subcommands (`dployr services …`)."""
    parser = commands.add_parser(name, help=help, description=help)
    return parser.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND")


def command(
    commands: Any, name: str, run: Any, help: str, example: str, **kwargs: Any
) -> argparse.ArgumentParser:
    """A client command: `help` is its one line, `example` one or more lines shown at the end
    of its --help."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=help,
        description=help,
        parents=[_PARENT],
        epilog="example:\n  " + "\n  ".join(example.splitlines()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        **kwargs,
    )
    parser.set_defaults(run=run)
    return parser


def page_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--page", type=int, default=1, help="page number (default 1)")
    parser.add_argument(
        "--per-page", type=int, default=50, help="items per page (default 50, at most 100)"
    )


def api(args: argparse.Namespace) -> Api:
    return Api(Settings.load(getattr(args, "url", None), getattr(args, "token", None)))


def service_id(client: Api, ref: str) -> str:
    """A service's id from its name or id (`web` or `svc_…`)."""
    return _resolve(client, "/services", "svc_", ref, "service", "dployr services ls")


def database_id(client: Api, ref: str) -> str:
    return _resolve(client, "/databases", "db_", ref, "database", "dployr databases ls")


def project_id(client: Api, ref: str) -> str:
    return _resolve(client, "/projects", "prj_", ref, "project", "dployr projects ls")


def credential_id(client: Api, ref: str) -> str:
    return _resolve(client, "/credentials", "crd_", ref, "credential", "dployr credentials ls")


def _resolve(client: Api, path: str, prefix: str, ref: str, kind: str, listing: str) -> str:
    if ref.startswith(prefix):
        return ref
    page = client.get(path, search=ref, per_page=100)
    found = [item for item in page["items"] if item["name"] == ref]
    if not found:
        raise CommandError(f"no {kind} named {ref!r}; see `{listing}`")
    if len(found) > 1:  # an admin sees every user's: names are unique per owner only
        ids = ", ".join(item["id"] for item in found)
        raise CommandError(f"{len(found)} {kind}s are named {ref!r} ({ids}): give the id")
    return str(found[0]["id"])
