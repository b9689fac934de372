"""The `dployr` command: the daemon's own commands (serve, migrate, backup, restore, admin) and
the API client (login, deploy, services, …). Modules import what they need when they run:
`dployr --help` stays fast."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from dployr import __version__
from dployr.cli import (
    account,
    backup,
    completion,
    databases,
    deploy,
    deployments,
    env,
    init,
    metrics,
    projects,
    routes,
    server,
    services,
    status,
    webhooks,
)
from dployr.cli.commands import add_client_flags
from dployr.cli.errors import INTERRUPTED, UNREACHABLE, CommandError

EXIT_CODES = """exit codes:
  0  done (a deployment: live)
  1  the API refused, or a deployment failed or was cancelled
  2  bad flags, arguments, manifest or config
  3  no dployr daemon answers at the URL (nothing there, or something else)
  4  not logged in, or the token is wrong, expired or revoked
  130  interrupted (Ctrl-C; a deployment goes on)"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dployr",
        description="A small self-hosted deploy agent: the daemon and its command-line client.",
        epilog="example:\n  dployr login --url http://127.0.0.1:7870 --email me@example.com\n"
        "  dployr deploy\n  dployr services ls\n\n" + EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"dployr {__version__}")
    add_client_flags(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    server.add_commands(commands)
    backup.add_commands(commands)
    account.add_commands(commands)
    services.add_commands(commands)
    deploy.add_commands(commands)
    deployments.add_commands(commands)
    init.add_commands(commands)
    metrics.add_commands(commands)
    status.add_commands(commands)
    env.add_commands(commands)
    routes.add_commands(commands)
    databases.add_commands(commands)
    webhooks.add_commands(commands)
    projects.add_commands(commands)
    completion.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return INTERRUPTED
    except BrokenPipeError:  # `dployr services ls | head`
        sys.stderr.close()
        return 0
    except CommandError as err:
        print(f"dployr: {err}", file=sys.stderr)
        return err.exit_code
    except (KeyError, TypeError) as err:
        # An answer without the fields this client reads: another program at the URL, or a
        # daemon of another version. DPLOYR_DEBUG=1 shows where.
        if os.environ.get("DPLOYR_DEBUG"):
            raise
        print(
            f"dployr: the daemon's answer lacks what this client expects ({type(err).__name__}: "
            f"{err}); is the URL a dployr daemon of this version? (DPLOYR_DEBUG=1 for details)",
            file=sys.stderr,
        )
        return UNREACHABLE
